pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]
