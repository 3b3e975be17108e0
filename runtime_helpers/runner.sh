# Starts a script on an SSH server, inside its run directory (the current directory).
# Uploaded with the helpers; invoked as `sh ./runner.sh LANGUAGE` by a fixed command.
# Records this shell's process id first: sshd made it a session leader, so the id names
# the session and process group that a timeout kills as a whole.
echo $$ > pid
CRONIUM_DIR=$PWD
. ./env
export CRONIUM_DIR
export PYTHONPATH="$CRONIUM_DIR/lib" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export NODE_PATH="$CRONIUM_DIR/lib" BASH_ENV="$CRONIUM_DIR/lib/cronium.sh"
case $1 in
  bash) exec bash --noprofile --norc ./script.sh ;;
  python) exec python3 -u ./script.py ;;
  node) exec node ./script.js ;;
esac
echo "cronium: unknown language $1" >&2
exit 127
