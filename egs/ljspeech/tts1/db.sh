# Where the corpus is, relative to this directory (./run.sh --db_root DIR overrides it):
# the unpacked LJSpeech-1.1.tar.bz2 (https://keithito.com/LJ-Speech-Dataset/), holding metadata.csv and wavs/.
db_root=downloads/LJSpeech-1.1
