"""揭榜挂帅 challenges: phases, datasets, teams, submissions, leaderboards, judging."""
