from transinr_cli.app import main

main()
