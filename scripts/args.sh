# Sourced by the scripts: argument checks shared by them, each failing with one line on stderr
# and exit status 2 before the script builds or runs anything.

# Prints the calling script's header comment (its lines 2.. up to the first line that is not a
# comment), without the leading "# ".
script_help() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# help_if_asked "$@": prints the header and exits 0 when the first argument is -h or --help.
help_if_asked() {
  if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    script_help
    exit 0
  fi
}

# optional_out_dir NAME "$@": the arguments of a script taking at most one OUT_DIR. -h/--help
# prints the header and exits 0; another option, or a second argument, is a usage error.
optional_out_dir() {
  local name=$1
  shift
  help_if_asked "$@"
  case ${1:-} in
    -*) echo "$name: unknown option $1 (usage: $0 [OUT_DIR])" >&2; exit 2 ;;
  esac
  (($# <= 1)) || { echo "$name: takes at most one argument, OUT_DIR; got $#: $*" >&2; exit 2; }
}

# positive_integers NAME VAR=VALUE...: each VALUE must be a positive integer.
positive_integers() {
  local name=$1 pair
  shift
  for pair in "$@"; do
    [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] ||
      { echo "$name: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
  done
}

# words_among NAME VAR "WORDS" "ALLOWED": each of WORDS must be one of ALLOWED.
words_among() {
  local word
  for word in $3; do
    [[ " $4 " == *" $word "* ]] ||
      { echo "$1: $2 has '$word'; expected words among: $4" >&2; exit 2; }
  done
}
