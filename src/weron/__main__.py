from weron.cli.main import main

main()
