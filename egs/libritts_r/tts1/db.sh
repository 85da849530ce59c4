# Where the corpus is, relative to this directory (./run.sh --db_root DIR overrides it): the directory
# LibriTTS_R/ that the subsets' archives (https://www.openslr.org/141/) unpack into, holding SPEAKERS.txt,
# train-clean-100/, dev-clean/, test-clean/ (and train-clean-360/, train-other-500/ if used).
db_root=downloads/LibriTTS_R
