# bash completion for aetherctl. Objects, verbs and options are read from
# aetherctl's own help, so they follow the installed version.

_aetherctl_objects()
{
	"$1" --help 2>/dev/null | awk '/^Objects:/ { on = 1; next }
		on && /^$/ { exit } on && /^  [a-z]/ { print $1 }'
}

# The verbs of an object: the first word of each of its usage lines.
_aetherctl_verbs()
{
	"$1" --help 2>/dev/null | awk -v obj="$2" '/^Objects:/ { on = 1; next }
		on && /^$/ { exit }
		on && /^  [a-z]/ { cur = $1; w = $2 }
		on && /^   +[a-z]/ { w = $1 }
		on && cur == obj && w ~ /^[a-z]/ { print w; w = "" }'
}

_aetherctl_services()
{
	"$@" -j service list 2>/dev/null |
		grep -o '"name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_aetherctl()
{
	local cur prev words cword
	_init_completion || return
	local bin=${words[0]} i obj="" verb="" pin=()

	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--pin-dir) pin=(--pin-dir "${words[i + 1]}"); ((i++)) ;;
		-*) ;;
		*) if [[ -z $obj ]]; then obj=${words[i]}; else verb=${words[i]}; break; fi ;;
		esac
	done
	if [[ $prev == --pin-dir ]]; then
		_filedir -d
		return
	fi
	# FILE: config apply
	if [[ -n $verb && $prev == "$verb" && $obj == conf* && $verb == a* ]]; then
		_filedir json 2>/dev/null || COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	# SERVICE: after --service, and after the verb of maglev, acl, ratelimit
	if [[ $prev == --service ]] ||
		[[ -n $verb && $prev == "$verb" && $obj == [mar]* ]]; then
		COMPREPLY=($(compgen -W "$(_aetherctl_services "$bin" "${pin[@]}")" -- "$cur"))
		return
	fi
	if [[ $cur == -* ]]; then
		local opts="--pin-dir --json --pretty --help --version"
		[[ -n $obj ]] && opts=$("$bin" "$obj" ${verb:+"$verb"} --help 2>/dev/null |
			grep -o -- '--[a-z-]*' | sort -u)
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ -z $obj ]]; then
		COMPREPLY=($(compgen -W "$(_aetherctl_objects "$bin")" -- "$cur"))
	elif [[ -z $verb ]]; then
		COMPREPLY=($(compgen -W "$(_aetherctl_verbs "$bin" "$obj")" -- "$cur"))
	fi
}
complete -F _aetherctl aetherctl
