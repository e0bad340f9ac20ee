#!/usr/bin/env bash
# Builds a minimal root file system holding the given dynamically linked
# executables and exactly the shared objects they load: the ELF interpreter
# (the loader) and every library `ldd` resolves for them, found from the
# binaries themselves, never from a list kept by hand.
#
#   scripts/assemble_rootfs.sh DEST SOURCE[:TARGET]...
#
#   DEST    directory to fill (created if missing; may already hold files)
#   SOURCE  an executable on this machine (symlinks are followed)
#   TARGET  absolute path for it inside DEST; default: SOURCE's own path
#
# Example (the image build):
#   scripts/assemble_rootfs.sh /rootfs \
#     /out/conntrack-cleaner:/usr/local/bin/conntrack-cleaner /usr/sbin/conntrack
#
# Every library is copied to the path it has on this machine. A symlink
# (e.g. /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)
# is recreated as the same symlink and its target is copied as well, so the
# chain resolves inside DEST. Directories are always created as real
# directories (a merged-/usr host's /lib -> usr/lib is not reproduced; the
# loader searches /lib/<triplet> and /usr/lib/<triplet> alike).
#
# Then it checks the result: every executable's interpreter and every
# DT_NEEDED entry of every copied object must resolve inside DEST through the
# loader's system search path or the object's own RPATH/RUNPATH (DEST has no
# /etc/ld.so.cache). Any missing piece stops the script with a non-zero status
# and a message naming it.
#
# Needs: bash, coreutils, ldd (libc-bin) and readelf (binutils).
# Nothing outside the ELF dependencies is added: no shell, no /etc. glibc
# needs no other file for these programs (nsswitch.conf and the like only
# matter for name lookups, which the kubelet's bind-mounted /etc files serve).
set -euo pipefail

prog=${0##*/}

die() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}

usage() {
  printf 'usage: %s DEST SOURCE[:TARGET]...\n' "$prog" >&2
  exit 2
}

[ "$#" -ge 2 ] || usage
case $1 in -h | --help) usage ;; esac

for tool in ldd readelf cp ln mkdir readlink dirname; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' is required but not installed (readelf: binutils, ldd: libc-bin)"
done

mkdir -p -- "$1"
DEST=$(cd -- "$1" && pwd -P)
[ "$DEST" != / ] || die "DEST must not be /"
shift

# Lexically normalise an absolute path: drop '.', '' and resolve '..'.
normalize() {
  local path=$1 part out=()
  local IFS=/
  # shellcheck disable=SC2086 # splitting on / is the point
  set -f
  for part in $path; do
    case $part in
      '' | .) ;;
      ..) [ "${#out[@]}" -eq 0 ] || unset 'out[${#out[@]}-1]' ;;
      *) out+=("$part") ;;
    esac
  done
  set +f
  printf '/%s\n' "${out[*]}"
}

# Copy the host file at absolute path $1 to DEST at the same path. A symlink
# is recreated as is and its target copied in turn (up to 40 hops, like the
# kernel). The first argument must be the path as the loader or ldd names it.
declare -A copied=()
copy_same_path() {
  local path hops=0 link target
  path=$(normalize "$1")
  while :; do
    [ -n "${copied[$path]:-}" ] && return 0
    [ -e "$path" ] || die "'$path' does not exist on this machine"
    mkdir -p -- "$DEST$(dirname -- "$path")"
    if [ -L "$path" ]; then
      link=$(readlink -- "$path")
      rm -f -- "$DEST$path"
      ln -s -- "$link" "$DEST$path"
      copied[$path]=1
      case $link in
        /*) target=$link ;;
        *) target=$(dirname -- "$path")/$link ;;
      esac
      path=$(normalize "$target")
      hops=$((hops + 1))
      [ "$hops" -le 40 ] || die "too many levels of symbolic links at '$1'"
    else
      [ -f "$path" ] || die "'$path' is not a regular file"
      cp -p -- "$path" "$DEST$path"
      copied[$path]=1
      return 0
    fi
  done
}

# Follow symlinks inside DEST (leaf symlinks only: DEST has real directories);
# print the resolved absolute path within DEST, or fail if it leads nowhere.
resolve_in_tree() {
  local path hops=0 link
  path=$(normalize "$1")
  while [ -L "$DEST$path" ]; do
    link=$(readlink -- "$DEST$path")
    case $link in
      /*) path=$(normalize "$link") ;;
      *) path=$(normalize "$(dirname -- "$path")/$link") ;;
    esac
    hops=$((hops + 1))
    [ "$hops" -le 40 ] || return 1
  done
  [ -f "$DEST$path" ] || return 1
  printf '%s\n' "$path"
}

is_elf() {
  [ "$(head -c 4 -- "$1" | od -An -c | tr -d ' \n')" = '177ELF' ]
}

# The ELF interpreter named in the program headers (PT_INTERP), if any.
interpreter_of() {
  local out
  out=$(readelf -lW -- "$1" 2>&1) || die "readelf cannot read '$1': $out"
  printf '%s\n' "$out" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p'
}

# The dynamic section of $1 (NEEDED, RPATH, RUNPATH...).
dynamic_of() {
  local out
  out=$(readelf -dW -- "$1" 2>&1) || die "readelf cannot read '$1': $out"
  printf '%s\n' "$out"
}

# The absolute paths ldd resolves for $1, interpreter included; dies on any
# "not found". Prints nothing for a static executable.
libraries_of() {
  local file=$1 out line
  if ! out=$(env -u LD_LIBRARY_PATH -u LD_PRELOAD -u LD_AUDIT ldd -- "$file" 2>&1); then
    case $out in
      *'not a dynamic executable'* | *'statically linked'*) return 0 ;;
    esac
    die "ldd failed on '$file': $out"
  fi
  while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    case $line in
      *'=> not found'*) die "'$file' needs '${line%% *}', which cannot be found on this machine" ;;
      *'statically linked'*) ;;
      *' => /'*)
        line=${line#* => }
        printf '%s\n' "${line%% (0x*}"
        ;;
      /*) printf '%s\n' "${line%% (0x*}" ;;
      *' => '* | *'=>'*) die "cannot read ldd line for '$file': '$line'" ;;
      *) ;; # linux-vdso.so.1 and the like live in the kernel, not on disk
    esac
  done <<<"$out"
}

# --- 1. the executables -------------------------------------------------------
declare -a objects=() executables=()
for spec in "$@"; do
  src=${spec%%:*}
  case $src in /*) ;; *) src=$PWD/$src ;; esac
  if [ "${spec%%:*}" = "$spec" ]; then target=$src; else target=${spec#*:}; fi
  case $target in
    /*) ;;
    *) die "TARGET must be an absolute path inside DEST, got '$target'" ;;
  esac
  [ -e "$src" ] || die "executable '$src' does not exist"
  src=$(readlink -f -- "$src")
  if [ ! -f "$src" ] || [ ! -x "$src" ]; then die "'$src' is not an executable file"; fi
  is_elf "$src" || die "'$src' is not an ELF file (scripts cannot run without a shell)"
  target=$(normalize "$target")
  mkdir -p -- "$DEST$(dirname -- "$target")"
  cp -L -- "$src" "$DEST$target"
  chmod 0755 -- "$DEST$target"
  copied[$target]=1
  executables+=("$src=$target")
  objects+=("$src")
done

# --- 2. the interpreter and libraries, transitively -----------------------------
# ldd already lists the whole closure of an executable; asking it again for each
# library costs little and catches libraries that only another library needs.
declare -A seen=()
queue=("${objects[@]}")
while [ "${#queue[@]}" -gt 0 ]; do
  file=${queue[0]}
  queue=("${queue[@]:1}")
  [ -z "${seen[$file]:-}" ] || continue
  seen[$file]=1
  interp=$(interpreter_of "$file")
  if [ -n "$interp" ]; then copy_same_path "$interp"; fi
  # (captured first: a failure inside `< <(...)` would not stop the script)
  libs=$(libraries_of "$file")
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    copy_same_path "$lib"
    # A library picked from a glibc-hwcaps subdirectory only suits CPUs like
    # this one: also copy the baseline one the loader falls back to.
    case $lib in
      */glibc-hwcaps/*/*)
        base=${lib%%/glibc-hwcaps/*}/${lib##*/}
        if [ -e "$base" ]; then copy_same_path "$base"; fi
        ;;
    esac
    real=$(readlink -f -- "$lib")
    queue+=("$real")
  done <<<"$libs"
done

# --- 3. check the result --------------------------------------------------------
# The loader's built-in search path, as it reports it itself (glibc >= 2.33).
loader=""
for entry in "${executables[@]}"; do
  loader=$(interpreter_of "${entry%%=*}")
  [ -z "$loader" ] || break
done
system_dirs=()
if [ -n "$loader" ]; then
  help=$("$loader" --help 2>&1) || die "'$loader --help' failed: $help"
  while IFS= read -r dir; do
    [ -z "$dir" ] || system_dirs+=("$dir")
  done <<<"$(printf '%s\n' "$help" | sed -n 's/^ *\(\/[^ ]*\) (system search path)$/\1/p')"
  [ "${#system_dirs[@]}" -gt 0 ] ||
    die "cannot read the system search path from '$loader --help' (glibc >= 2.33 needed)"
fi

# Each regular ELF file in DEST, with the path it has there.
check_object() {
  local path=$1 file=$DEST$1 interp dynamic soname dir found dirs=() origin
  interp=$(interpreter_of "$file")
  dynamic=$(dynamic_of "$file")
  if [ -n "$interp" ]; then
    resolve_in_tree "$interp" >/dev/null ||
      die "'$path' needs the interpreter '$interp', which is missing from $DEST"
  fi
  origin=$(dirname -- "$path")
  while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    dir=${dir//\$\{ORIGIN\}/$origin}
    dirs+=("${dir//\$ORIGIN/$origin}")
  done <<<"$(printf '%s\n' "$dynamic" |
    sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p' | tr ':' '\n')"
  dirs+=("${system_dirs[@]}")
  while IFS= read -r soname; do
    [ -n "$soname" ] || continue
    found=""
    for dir in "${dirs[@]}"; do
      if resolve_in_tree "$dir/$soname" >/dev/null; then
        found=1
        break
      fi
    done
    [ -n "$found" ] ||
      die "'$path' needs '$soname', which is not in $DEST under ${dirs[*]}"
  done <<<"$(printf '%s\n' "$dynamic" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')"
}

for path in "${!copied[@]}"; do
  if [ -f "$DEST$path" ] && [ ! -L "$DEST$path" ] && is_elf "$DEST$path"; then
    check_object "$path"
  fi
done

for entry in "${executables[@]}"; do
  printf '%s: %s -> %s%s\n' "$prog" "${entry%%=*}" "$DEST" "${entry#*=}" >&2
done
printf '%s: %d files and links in %s\n' "$prog" "${#copied[@]}" "$DEST" >&2
