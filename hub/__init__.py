"""Cross-cutting pieces of the AI+ Scenario Hub: config, database, users, roles, i18n, audit."""
