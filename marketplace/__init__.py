"""AI+ scenario opportunity list (场景机会清单) and 揭榜 applications."""
