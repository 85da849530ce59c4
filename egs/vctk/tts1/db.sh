# Where the corpus is, relative to this directory (./run.sh --db_root DIR overrides it): the unpacked
# VCTK-Corpus-0.92.zip (https://datashare.ed.ac.uk/handle/10283/3443), holding speaker-info.txt, txt/
# and wav48_silence_trimmed/.
db_root=downloads/VCTK-Corpus-0.92
