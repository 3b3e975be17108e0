# Starts a script on an SSH server, inside its run directory (the current directory).
# Uploaded with the helpers; invoked as `sh ./runner.sh LANGUAGE` by a fixed command.
# Records its process group and session first: what a timeout or the cleanup kills whole.
# (sshd made the login shell a session leader; this shell is it or runs inside it.)
if read -r _ _ _ _ pgid sid _ < /proc/$$/stat 2>/dev/null; then
  echo "$pgid $sid" > pid
else
  echo "$$ $$" > pid
fi
CRONIUM_DIR=$PWD
# Inherited by every process the script starts, also one that leaves the session
# (setsid, daemons): the cleanup finds those by it.
CRONIUM_RUN_TOKEN=${PWD##*/}
. ./env
export CRONIUM_DIR CRONIUM_RUN_TOKEN
export PYTHONPATH="$CRONIUM_DIR/lib" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export NODE_PATH="$CRONIUM_DIR/lib" BASH_ENV="$CRONIUM_DIR/lib/cronium.sh"
case $1 in
  bash) exec bash --noprofile --norc ./script.sh ;;
  python) exec python3 -u ./script.py ;;
  node) exec node ./script.js ;;
esac
echo "cronium: unknown language $1" >&2
exit 127
