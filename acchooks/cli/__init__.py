"""The command line: ``acchooks train|test|...`` and the train/test entry points."""
