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
# - The cluster's Ray must be the one `make install` puts on your machine (requirements.lock's ray
#   pin, uploaded with the job): another Ray is refused here, exit 2, before anything runs.
#   (A driver joining RAY_ADDRESS directly is checked by ray.init itself: "Version mismatch".)
set -euo pipefail
export DVC_NO_ANALYTICS=true
if [ -f requirements.lock ]; then
  want="$(sed -n 's/^ray==\([^ ]*\).*/\1/p' requirements.lock)"
  have="$("${GAN_LAB_PYTHON:-python}" -c 'import ray; print(ray.__version__)' 2>/dev/null || echo none)"
  if [ -n "$want" ] && [ "$have" != "$want" ]; then
    echo "infra/ray/job.sh: this Ray cluster runs Ray $have, requirements.lock pins ray==$want: submit to a cluster" \
         "whose image or setup installs ray==$want (infra/README.md), or change the lock (make lock)" >&2
    exit 2
  fi
fi
job_dir="$(mktemp -d "${TMPDIR:-/tmp}/gan-lab-job.XXXXXX")"
[ "${GAN_LAB_KEEP_JOB_DIR:-0}" = 1 ] || trap 'rm -rf "$job_dir"' EXIT
cp -a . "$job_dir/"
cd "$job_dir"
[ -d .git ] || git init -q .
echo "job.sh: running '$*' in $job_dir" >&2
"$@"
