from weron.cli.entry import weron

weron()
