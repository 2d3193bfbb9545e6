from vidseq.cli import run

run()
