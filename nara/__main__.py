from nara.cli import main

main()
