# Where the corpus is, relative to this directory (./run.sh --db_root DIR overrides it): the directory the
# VoiceBank-DEMAND zips (https://datashare.ed.ac.uk/handle/10283/2791) are unpacked into, side by side:
# clean_trainset_28spk_wav/, noisy_trainset_28spk_wav/, trainset_28spk_txt/, clean_testset_wav/,
# noisy_testset_wav/, testset_txt/.
db_root=downloads/VoiceBank-DEMAND
