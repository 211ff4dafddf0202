#!/usr/bin/env bash
# Entrypoint wrapper of a submitted pipeline job; it starts in the uploaded working dir:
#
#   ray job submit --address http://<head>:8265 --working-dir . --runtime-env infra/ray/runtime_env.yaml \
#       -- env GAN_LAB_GIT_COMMIT=$(git rev-parse HEAD) bash infra/ray/job.sh dvc repro train@dcgan
#
# - Ray unpacks identical uploads into one directory per node and reuses it for later jobs, so a
#   job writing its outputs there would find (and DVC would skip on) an earlier job's outputs, and
#   two jobs at once would write over each other: the command runs in a private copy, removed at
#   the end (results live in MLflow and in GAN_LAB_STORAGE; GAN_LAB_KEEP_JOB_DIR=1 keeps it).
# - Ray leaves .git out of the upload, but DVC runs only inside a git repository: the copy gets an
#   empty one. The commit you submitted from reaches MLflow's git_commit tag through
#   GAN_LAB_GIT_COMMIT (expanded by your shell at submit time).
set -euo pipefail
export DVC_NO_ANALYTICS=true
job_dir="$(mktemp -d "${TMPDIR:-/tmp}/gan-lab-job.XXXXXX")"
[ "${GAN_LAB_KEEP_JOB_DIR:-0}" = 1 ] || trap 'rm -rf "$job_dir"' EXIT
cp -a . "$job_dir/"
cd "$job_dir"
[ -d .git ] || git init -q .
echo "job.sh: running '$*' in $job_dir" >&2
"$@"
