"""The composition root: the `cairn` command line (`cairn.cli.app`), the local stack, the deployer and the
demo.
The one package that may import every layer; nothing imports it."""
