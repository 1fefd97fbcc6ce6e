"""Each module registers one command (or command group) on ``initlab.cli.main.app``.

The list of modules is ``initlab.cli.main.COMMANDS``; ``initlab.cli.main.load_commands`` imports them.
"""
