#!/usr/bin/env bash
# One-time root set-up of a Noisy Labels class on a shared Linux server (issue 23).
# Idempotent: run it again after changing the roster. Every step is printed; see --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo bash deploy/install.sh --instructor USER [options]

Sets up a Noisy Labels class on this server, from this checkout:
  the accounts of the roster (created if missing, home folders 0700), a grading group
  (the instructor and the roster's graders), the course environment system-wide with its
  Jupyter kernel, one system nbgrader_config.py (course id and exchange for every account),
  the exchange (1777, sticky) with the course's folder in it pre-created by the instructor,
  the course folder (owned by the instructor and the grading group, 2770, closed to students),
  the students in the course gradebook, the grading delegate; then runs `noisylabels doctor`.

Options:
  --instructor USER      the account that owns the course and grades (created if missing)
  --prefix DIR           the course environment, a venv of /usr/bin/python3 (default /opt/noisylabels)
  --env-bin DIR          use this existing environment's bin/ instead of installing one
  --course DIR           the course folder (default /srv/noisy-labels/course)
  --update-course        copy this checkout's course files over an existing course folder
                         (grading state -- submitted/, autograded/, feedback/, gradebook.db,
                         instructor/, grade files -- is never touched); without it an existing
                         course folder keeps its files
  --exchange DIR         nbgrader's exchange (default /srv/nbgrader/exchange)
  --roster FILE          CSV: username,role,first_name,last_name (role: student|grader|instructor)
  --group NAME           the grading group (default graders)
  --config-dir DIR       where the system nbgrader_config.py goes (default /etc/jupyter, read by
                         every account's Jupyter; elsewhere, accounts need it on JUPYTER_CONFIG_PATH)
  --kernel-prefix DIR    where the kernel is registered (default /usr/local: share/jupyter/kernels)
  -h, --help             this help
EOF
}

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COURSE_ID=noisy-labels
INSTRUCTOR="" PREFIX=/opt/noisylabels ENV_BIN="" COURSE=/srv/noisy-labels/course UPDATE_COURSE=0
EXCHANGE=/srv/nbgrader/exchange ROSTER="" GROUP=graders CONFIG_DIR=/etc/jupyter KERNEL_PREFIX=/usr/local

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --update-course) UPDATE_COURSE=1; shift; continue ;;
        --instructor|--prefix|--env-bin|--course|--exchange|--roster|--group|--config-dir|--kernel-prefix)
            [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)" ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    case "$1" in
        --instructor) INSTRUCTOR=$2 ;; --prefix) PREFIX=$2 ;; --env-bin) ENV_BIN=$2 ;;
        --course) COURSE=$2 ;; --exchange) EXCHANGE=$2 ;; --roster) ROSTER=$2 ;; --group) GROUP=$2 ;;
        --config-dir) CONFIG_DIR=$2 ;; --kernel-prefix) KERNEL_PREFIX=$2 ;;
    esac
    shift 2
done

# ------------------------------------------------------------------ check everything before changing anything
[[ -n "$INSTRUCTOR" ]] || die "--instructor USER is required (see --help)"
[[ $EUID -eq 0 ]] || die "run as root: sudo bash deploy/install.sh --instructor $INSTRUCTOR ..."
NAME_RE='^[a-z_][a-z0-9_-]{0,31}$'
[[ "$INSTRUCTOR" =~ $NAME_RE ]] || die "--instructor: '$INSTRUCTOR' is not a valid account name"
[[ "$GROUP" =~ $NAME_RE ]] || die "--group: '$GROUP' is not a valid group name"
for var in PREFIX COURSE EXCHANGE CONFIG_DIR KERNEL_PREFIX; do
    [[ "${!var}" == /* ]] || die "--${var,,} must be an absolute path (got '${!var}')"
    printf -v "$var" '%s' "${!var%/}"
done
[[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is missing (apt-get install -y python3 python3-venv)"
[[ -f "$REPO/nbgrader_config.py" && -d "$REPO/solutions" ]] || die "$REPO is not the course checkout"
case "$COURSE/" in "$REPO"/*) die "--course must be outside the checkout $REPO" ;; esac
case "$REPO/" in "$COURSE"/*) die "--course must not contain the checkout $REPO" ;; esac
for tool in useradd groupadd usermod runuser tar; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
ROSTER_LINES=()
if [[ -n "$ROSTER" ]]; then
    [[ -f "$ROSTER" ]] || die "--roster: no such file: $ROSTER"
    roster_out=$(PYTHONPATH="$REPO" /usr/bin/python3 -m autograder.permissions roster "$ROSTER") || die "the roster is not valid (above); nothing was changed"
    mapfile -t ROSTER_LINES <<<"$roster_out"
fi
if [[ -n "$ENV_BIN" ]]; then
    [[ -x "$ENV_BIN/python" ]] || die "--env-bin: $ENV_BIN/python is missing"
fi

home_of() { getent passwd "$1" | cut -d: -f6; }

# ------------------------------------------------------------------ accounts and the grading group
step "accounts: the instructor $INSTRUCTOR and ${#ROSTER_LINES[@]} from the roster"
ensure_account() {  # name, comment
    if id -u "$1" >/dev/null 2>&1; then
        note "$1 exists"
    else
        useradd -m -s /bin/bash -c "$2" "$1"
        note "$1 created (useradd -m)"
    fi
    local home; home=$(home_of "$1")
    if [[ -d "$home" ]]; then chmod 0700 "$home"; note "$home: mode 0700"; fi
}
ensure_account "$INSTRUCTOR" "Noisy Labels instructor"
GRADERS=("$INSTRUCTOR") STUDENTS=()
for line in "${ROSTER_LINES[@]}"; do
    IFS=$'\t' read -r name role first last <<<"$line"
    ensure_account "$name" "$first $last"
    if [[ "$role" == student ]]; then STUDENTS+=("$line"); else GRADERS+=("$name"); fi
done

step "grading group $GROUP: ${GRADERS[*]}"
if getent group "$GROUP" >/dev/null; then note "$GROUP exists"; else groupadd "$GROUP"; note "$GROUP created"; fi
for name in "${GRADERS[@]}"; do usermod -aG "$GROUP" "$name"; done
for line in "${STUDENTS[@]}"; do
    IFS=$'\t' read -r name _ <<<"$line"
    if id -nG "$name" | tr ' ' '\n' | grep -qx "$GROUP"; then
        die "student $name is in the grading group $GROUP: remove them (gpasswd -d $name $GROUP) or fix the roster"
    fi
done

# ------------------------------------------------------------------ the course environment and its kernel
umask 022
if [[ -n "$ENV_BIN" ]]; then
    step "course environment: the existing $ENV_BIN"
    PY="$ENV_BIN/python"
else
    step "course environment: $PREFIX (a venv of /usr/bin/python3, this checkout installed)"
    if [[ -x "$PREFIX/bin/python" ]]; then note "$PREFIX exists"; else /usr/bin/python3 -m venv "$PREFIX"; note "venv made"; fi
    staging=$(mktemp -d)
    trap 'rm -rf "$staging"' EXIT
    tar -C "$REPO" --exclude=.git --exclude=.venv --exclude=build --exclude=__pycache__ \
        --exclude='*.egg-info' --exclude=.pytest_cache -cf - . | tar -C "$staging" -xf -
    "$PREFIX/bin/pip" install --quiet "$staging"
    rm -rf "$staging"
    chmod -R a+rX "$PREFIX"
    PY="$PREFIX/bin/python"
    note "installed: $("$PY" -m pip --version | cut -d' ' -f1-2), noisylabels from $REPO"
fi
runuser -u "$INSTRUCTOR" -- env -i PATH=/usr/bin:/bin HOME=/ "$PY" -c "import noisylabels, autograder, nbgrader" \
    || die "$PY cannot import the course as $INSTRUCTOR: the environment must be readable by every account (one made from /usr/bin/python3 outside /root)"
note "$INSTRUCTOR can run it"
step "kernel noisylabels registered in $KERNEL_PREFIX/share/jupyter/kernels"
if ! kernel_out=$("$PY" -m ipykernel install --prefix "$KERNEL_PREFIX" --name noisylabels \
        --display-name "Python 3 (Noisy Labels)" 2>&1); then
    printf '%s\n' "$kernel_out" >&2
    die "the kernel could not be registered"
fi
chmod -R a+rX "$KERNEL_PREFIX/share/jupyter/kernels/noisylabels"

# ------------------------------------------------------------------ the system nbgrader configuration
CONFIG="$CONFIG_DIR/nbgrader_config.py"
step "system nbgrader configuration $CONFIG: course id $COURSE_ID, exchange $EXCHANGE"
mkdir -p "$CONFIG_DIR"
new_config=$("$PY" -c 'import sys; from autograder.permissions import system_config_text as t; sys.stdout.write(t(sys.argv[1], sys.argv[2]))' "$EXCHANGE" "$COURSE_ID")
if [[ -f "$CONFIG" && "$(cat "$CONFIG")" != "$new_config" ]]; then
    backup="$CONFIG.bak.$(date +%Y%m%d%H%M%S)"
    cp -p "$CONFIG" "$backup"
    note "an earlier $CONFIG differed: kept as $backup"
fi
printf '%s' "$new_config" > "$CONFIG"
chown root:root "$CONFIG"
chmod 0644 "$CONFIG"

# ------------------------------------------------------------------ the exchange
step "exchange $EXCHANGE: root's, mode 1777 (sticky)"
mkdir -p "$(dirname "$EXCHANGE")"
[[ -L "$EXCHANGE" ]] && die "$EXCHANGE is a symbolic link: remove it first"
mkdir -p "$EXCHANGE"
chown root:root "$EXCHANGE"
chmod 1777 "$EXCHANGE"
EXCHANGE_COURSE="$EXCHANGE/$COURSE_ID"
step "course folder in the exchange $EXCHANGE_COURSE: made by $INSTRUCTOR, nbgrader's modes"
if [[ -e "$EXCHANGE_COURSE" || -L "$EXCHANGE_COURSE" ]]; then
    owner=$(stat -c %U "$EXCHANGE_COURSE")
    if [[ -L "$EXCHANGE_COURSE" || "$owner" != "$INSTRUCTOR" ]]; then
        moved="$EXCHANGE_COURSE.hijacked.$(date +%Y%m%d%H%M%S)"
        mv "$EXCHANGE_COURSE" "$moved"
        chown root:root "$moved"
        chmod 0700 "$moved"
        note "WARNING: it belonged to $owner, not $INSTRUCTOR: moved to $moved (closed) for you to inspect"
    fi
fi
as_instructor() { runuser -u "$INSTRUCTOR" -- "$@"; }
for sub in . outbound inbound feedback; do
    case "$sub" in .) mode=0755 ;; outbound) mode=0755 ;; inbound) mode=3733 ;; feedback) mode=0711 ;; esac
    path="$EXCHANGE_COURSE/$sub"; path=${path%/.}
    if [[ ! -d "$path" ]]; then as_instructor mkdir "$path"; fi
    chgrp "$GROUP" "$path"
    chmod "$mode" "$path"
    note "$(stat -c '%A %U:%G %n' "$path")"
done

# ------------------------------------------------------------------ the course folder
step "course folder $COURSE: $INSTRUCTOR:$GROUP, mode 2770, closed to students"
mkdir -p "$(dirname "$COURSE")"
[[ -L "$COURSE" ]] && die "$COURSE is a symbolic link: remove it first"
fresh=0
if [[ ! -f "$COURSE/nbgrader_config.py" ]]; then fresh=1; fi
if [[ $fresh == 1 || $UPDATE_COURSE == 1 ]]; then
    mkdir -p "$COURSE"
    # the course files: never the grading state, the checkout's tooling or its outputs, and
    # never the Python packages: nbgrader puts the course folder first on sys.path, so a copy
    # of noisylabels/ or autograder/ there would shadow the environment's (and go stale)
    for package in noisylabels autograder; do
        if [[ -e "$COURSE/$package" ]]; then
            rm -rf "${COURSE:?}/$package"
            note "removed $COURSE/$package (a copy left by an earlier install; the environment's is used)"
        fi
    done
    entries=()
    while IFS= read -r -d '' entry; do entries+=("$(basename "$entry")"); done < <(
        find "$REPO" -mindepth 1 -maxdepth 1 \( -name .git -o -name .venv -o -name venv -o -name build -o -name dist \
            -o -name '*.egg-info' -o -name .pytest_cache -o -name __pycache__ -o -name .ipynb_checkpoints \
            -o -name exchange -o -name submitted -o -name autograded -o -name feedback -o -name 'gradebook.db*' \
            -o -name instructor -o -name '*grades*.csv' -o -name '*.csv.log' -o -name '*.csv.bad' \
            -o -name '*_similarity.*' -o -name 'nbgrader_*.log' -o -name .nbgrader.log \
            -o -name refused_submissions.log -o -name .ci \
            -o -name noisylabels -o -name autograder -o -name tests -o -name benchmarks -o -name deploy \
            -o -name docs -o -name pyproject.toml -o -name environment.yml -o -name CONTRIBUTING.md \
            -o -name .gitignore -o -name .github \) -prune -o -mindepth 1 -maxdepth 1 -print0)
    tar -C "$REPO" --exclude=__pycache__ --exclude=.ipynb_checkpoints --exclude='*.pyc' \
        --exclude=benchmarks/results -cf - "${entries[@]}" | tar -C "$COURSE" --no-same-owner -xf -
    for entry in "${entries[@]}"; do
        chown -R "$INSTRUCTOR:$GROUP" "$COURSE/$entry"
        chmod -R u+rwX,g+rwX,o-rwx "$COURSE/$entry"
        find "$COURSE/$entry" -type d -exec chmod g+s {} +
    done
    note "copied ${#entries[@]} entries of $REPO: ${entries[*]}"
else
    note "the course files are there (not overwritten; --update-course copies this checkout's over them)"
fi
chown "$INSTRUCTOR:$GROUP" "$COURSE"
chmod 2770 "$COURSE"
chmod -R o-rwx "$COURSE"  # the second wall: nothing inside is open to others either
n_root=$(find "$COURSE" -user root | wc -l)
if [[ $n_root -gt 0 ]]; then
    find "$COURSE" -user root -exec chown "$INSTRUCTOR:$GROUP" {} +
    note "$n_root path(s) owned by root given to $INSTRUCTOR (earlier grading as root)"
fi
note "$(stat -c '%A %U:%G %n' "$COURSE")"

# ------------------------------------------------------------------ students in the gradebook
step "gradebook $COURSE/gradebook.db: ${#STUDENTS[@]} student(s) added as $INSTRUCTOR, read-write for $GROUP"
nbgrader_as_instructor() {
    as_instructor env -i -C "$COURSE" PATH="$(dirname "$PY"):/usr/bin:/bin" HOME="$(home_of "$INSTRUCTOR")" \
        JUPYTER_CONFIG_PATH="$CONFIG_DIR" "$PY" -m nbgrader "$@"
}
if [[ ${#STUDENTS[@]} -gt 0 ]]; then
    students_csv="$COURSE/.roster_students.csv"
    { echo "id,first_name,last_name"
      for line in "${STUDENTS[@]}"; do IFS=$'\t' read -r name _ first last <<<"$line"; echo "$name,$first,$last"; done
    } > "$students_csv"
    chown "$INSTRUCTOR:$GROUP" "$students_csv"
    chmod 0640 "$students_csv"
    nbgrader_as_instructor db student import "$students_csv" --log-level=WARN
    rm -f "$students_csv"
fi
n_students=$(nbgrader_as_instructor db student list 2>/dev/null | grep -c -- ' -- ' || true)
chmod 0660 "$COURSE/gradebook.db"  # sqlite makes it 0640: co-graders record grades too
note "$n_students student(s) in the gradebook"

# ------------------------------------------------------------------ grading without root
step "grading delegate for the group $GROUP"
if "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("autograder.sandbox.delegate") is None)' 2>/dev/null; then
    # exit 1: no cgroup subtree can be delegated here (e.g. cgroup v2 only): grading still
    # works without root, with per-process limits only (the graders' logs say so)
    status=0
    "$PY" -m autograder.sandbox.delegate --group "$GROUP" || status=$?
    if [ "$status" -eq 1 ]; then
        note "no cgroup delegated on this machine: runs keep their per-process limits only"
    elif [ "$status" -ne 0 ]; then
        exit "$status"
    fi
else
    note "skipped: autograder.sandbox.delegate is not in this version of the course"
fi

# ------------------------------------------------------------------ check
step "noisylabels doctor"
doctor=("$PY" -m noisylabels.cli doctor --course "$COURSE" --exchange "$EXCHANGE" --instructor "$INSTRUCTOR"
        --group "$GROUP" --config-dir "$CONFIG_DIR")
[[ -n "$ROSTER" ]] && doctor+=(--roster "$ROSTER")
JUPYTER_PATH="$KERNEL_PREFIX/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}" "${doctor[@]}" \
    || die "the set-up is not right yet (problems above)"
step "done: $INSTRUCTOR releases, collects and grades in $COURSE as their own account"
