pytest_plugins = ["pgclaims.plugin"]
