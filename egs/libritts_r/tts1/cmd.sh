# How parallel jobs run. Locally: run.pl. On a Slurm cluster, for example:
#   export train_cmd="slurm.pl --mem 8G"; export cuda_cmd="slurm.pl --gpu 1 --mem 16G"
export train_cmd="run.pl"
export cuda_cmd="run.pl"
