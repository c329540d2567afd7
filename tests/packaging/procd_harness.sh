# A stand-in for /etc/rc.common and what it sources (/lib/functions.sh, procd.sh), to run
# files/etc/init.d/ser under busybox sh or dash and record what it asks procd for.  This tests
# our script, not procd.
#
#   sh -c '. procd_harness.sh; harness INITSCRIPT ACTION...'     (ACTION: start, reload, check,
#                                                                 or any function of the script)
# Environment:
#   RECORD         file to append the calls to, one line each: NAME [arg] [arg] ... (a line
#                  break inside an argument is written as "|")
#   UCI_SH         shell file setting CONFIG_<section>_<option>=value (what config_load reads)
#   IPKG_INSTROOT  a root with lib/functions/network.sh (stubbed by the test)
#   HARNESS_PYTHON, HARNESS_PYTHONPATH   the python3 and serlite tree that ser_uci runs
#   HARNESS_SER_RUN, HARNESS_SER_UCI, HARNESS_SER_BIN   replace the init script's SER_RUN,
#                  SER_UCI and SER_BIN
# shellcheck shell=dash

record() {
	local name=$1 arg
	shift
	{
		printf '%s' "$name"
		for arg in "$@"; do
			printf ' [%s]' "$(printf '%s' "$arg" | tr '\n' '|')"
		done
		echo
	} >>"$RECORD"
}

# procd.sh: the calls an init script makes to describe its service
procd_open_instance() { record procd_open_instance "$@"; }
procd_set_param() { record procd_set_param "$@"; }
procd_append_param() { record procd_append_param "$@"; }
procd_close_instance() { record procd_close_instance "$@"; }
procd_add_reload_trigger() { record procd_add_reload_trigger "$@"; }
procd_add_interface_trigger() { record procd_add_interface_trigger "$@"; }
procd_add_reload_interface_trigger() { record procd_add_reload_interface_trigger "$@"; }
procd_send_signal() { record procd_send_signal "$@"; }
procd_kill() { record procd_kill "$@"; }
procd_open_data() { record procd_open_data "$@"; }
procd_close_data() { record procd_close_data "$@"; }
procd_set_config_changed() { record procd_set_config_changed "$@"; }

# jshn.sh: what the script puts in procd's data (the firewall rules)
json_add_string() { record json_add_string "$@"; }
json_add_object() { record json_add_object "$@"; }
json_close_object() { record json_close_object "$@"; }
json_add_array() { record json_add_array "$@"; }
json_close_array() { record json_close_array "$@"; }

# /lib/functions.sh: UCI as config_load leaves it, CONFIG_<section>_<option>
config_load() {
	record config_load "$@"
	# shellcheck source=/dev/null
	. "$UCI_SH"
}

config_get() {
	eval "$1=\"\${CONFIG_${2}_${3}:-\$4}\""
}

# CONFIG_SECTIONS and CONFIG_<section>_TYPE, as config_load leaves them
config_foreach() {
	local _function=$1 _type=$2 _section _t
	shift 2
	for _section in $CONFIG_SECTIONS; do
		eval "_t=\"\${CONFIG_${_section}_TYPE}\""
		[ "$_t" = "$_type" ] && "$_function" "$_section" "$@"
	done
	return 0
}

config_get_bool() {
	local _value
	config_get _value "$2" "$3" "$4"
	case "$_value" in
		1|on|true|yes|enabled) _value=1 ;;
		0|off|false|no|disabled) _value=0 ;;
		*) _value=$4 ;;
	esac
	eval "$1=\$_value"
}

# the init script calls logger -t TAG -p PRIORITY [MESSAGE]: without a message it reads stdin
logger() {
	if [ "$#" -gt 4 ]; then
		record logger "$@"
	else
		record logger "$@" "$(cat)"
	fi
}

# rc.common with USE_PROCD: start runs start_service, procd_close_service service_triggers,
# then service_started if the script has it; stop runs stop_service, procd_kill, then
# service_stopped
start() {
	record start
	start_service "$@"
	service_triggers
	if type service_started >/dev/null 2>&1; then
		service_started
	fi
}

stop() {
	record stop
	if type stop_service >/dev/null 2>&1; then
		stop_service "$@"
	fi
	procd_kill ser
	if type service_stopped >/dev/null 2>&1; then
		service_stopped
	fi
}

harness() {
	local initscript=$1
	shift
	# shellcheck source=/dev/null
	. "$initscript"
	SER_RUN=${HARNESS_SER_RUN:-$SER_RUN}
	SER_UCI=${HARNESS_SER_UCI:-$SER_UCI}
	SER_BIN=${HARNESS_SER_BIN:-$SER_BIN}
	# shellcheck disable=SC2317  # called by the init script
	ser_uci() {
		PYTHONPATH="$HARNESS_PYTHONPATH" "$HARNESS_PYTHON" -m serlite.uci "$@"
	}
	for action in "$@"; do
		case "$action" in
			reload) record reload; reload_service ;;
			*) "$action" ;;
		esac
	done
}
