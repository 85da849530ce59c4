#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by recipe scripts:
#   . utils/parse_options.sh
# Every "--some-name value" (or --some-name=value) sets the shell variable
# some_name, which must already be defined (a typo is an error, not a silent
# no-op). "--config FILE" sources FILE first. "--help" prints $help_message.
# Positional arguments are left in "$@".

while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      echo "${help_message:-no help available}" >&2
      exit 0 ;;
    --config)
      [ -f "$2" ] || { echo "$0: --config: no such file $2" >&2; exit 1; }
      . "$2"; shift 2 ;;
    --*=*)
      _name=${1%%=*}; _name=${_name#--}; _name=${_name//-/_}
      _value=${1#*=}
      if [ -z "${!_name+set}" ]; then echo "$0: unknown option --${_name} (no variable \$${_name})" >&2; exit 1; fi
      printf -v "$_name" '%s' "$_value"; shift ;;
    --*)
      _name=${1#--}; _name=${_name//-/_}
      if [ -z "${!_name+set}" ]; then echo "$0: unknown option --${_name} (no variable \$${_name})" >&2; exit 1; fi
      if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 1; fi
      printf -v "$_name" '%s' "$2"; shift 2 ;;
    *) break ;;
  esac
done
unset _name _value
true
