from medcl.cli import main

main()
