from seqbench.cli import main

main()
