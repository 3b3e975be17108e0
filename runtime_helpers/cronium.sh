# Cronium runtime helpers for bash scripts. Preloaded for bash events; `source cronium.sh`
# works too. Bash built-ins only (no jq): values are written as text, and Cronium reads a
# value as JSON when it parses as JSON, else as a string (like `cronium var set`).

CRONIUM_DIR=${CRONIUM_DIR:-/cronium}
case ":$PATH:" in
  *":$CRONIUM_DIR/lib:"*) ;;
  *) PATH="$CRONIUM_DIR/lib:$PATH" ;;
esac

_cronium_error() {
  printf 'cronium: %s\n' "$*" >&2
  return 1
}

_cronium_check_key() {
  if [[ ! $2 =~ ^[A-Z_][A-Z0-9_]*$ ]]; then
    _cronium_error "$1: variable key '$2' must match [A-Z_][A-Z0-9_]* (upper case, digits, _)"
    return 1
  fi
  if [[ $2 == CRONIUM_* || $2 == PREFECT_* ]]; then
    _cronium_error "$1: variable key '$2' uses a reserved prefix (CRONIUM_, PREFECT_)"
    return 1
  fi
}

_cronium_cat() {
  local line
  [[ -f $1 ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do printf '%s\n' "$line"; done < "$1"
}

# Prints the run's input as JSON (null when there is none).
cronium_input() { _cronium_cat "$CRONIUM_DIR/in/input.json"; }

# Sets the run's output: JSON, or any text (kept as a string). Reads stdin without an argument.
cronium_output() {
  local data limit=${CRONIUM_OUTPUT_LIMIT:-1048576}
  if (($# == 0)); then IFS= read -r -d '' data || true; else data=$1; fi
  local LC_ALL=C
  if ((${#data} > limit)); then
    _cronium_error "cronium_output: output is ${#data} bytes, over the limit of $limit bytes"
    return 1
  fi
  printf '%s' "$data" > "$CRONIUM_DIR/out/output.txt"
}

# Prints a variable's value: strings as they are, other values as JSON; nothing when unset.
cronium_getVariable() {
  _cronium_check_key cronium_getVariable "$1" || return 1
  if [[ -f $CRONIUM_DIR/out/vars/$1.txt ]]; then
    _cronium_cat "$CRONIUM_DIR/out/vars/$1.txt"
  else
    _cronium_cat "$CRONIUM_DIR/in/vars/$1"
  fi
}

# Sets a variable: cronium_setVariable KEY VALUE (VALUE as JSON when it parses, else text).
cronium_setVariable() {
  _cronium_check_key cronium_setVariable "$1" || return 1
  if (($# != 2)); then
    _cronium_error "cronium_setVariable: expected KEY VALUE, got $# arguments"
    return 1
  fi
  if ((${#2} > 10000)); then
    _cronium_error "cronium_setVariable $1: value is ${#2} characters, over the limit of 10000"
    return 1
  fi
  printf '%s' "$2" > "$CRONIUM_DIR/out/vars/$1.txt"
}

# Sets the condition for `on: condition` actions: true or false.
cronium_setCondition() {
  case $1 in
    true | 1) printf 'true' > "$CRONIUM_DIR/out/condition" ;;
    false | 0) printf 'false' > "$CRONIUM_DIR/out/condition" ;;
    *) _cronium_error "cronium_setCondition: expected true or false, got '$1'" ;;
  esac
}

# Prints this run's metadata as JSON.
cronium_event() { _cronium_cat "$CRONIUM_DIR/in/event.json"; }

cronium_get_variable() { cronium_getVariable "$@"; }
cronium_set_variable() { cronium_setVariable "$@"; }
cronium_set_condition() { cronium_setCondition "$@"; }
