from digitguard.cli import main

main()
