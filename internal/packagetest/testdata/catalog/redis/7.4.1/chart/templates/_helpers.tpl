{{- define "redis.labels" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "redis.selector" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- /* maxmemory in bytes: 80% of the container limit, leaving room for buffers. */ -}}
{{- define "redis.maxmemory" -}}
{{- $q := .Values.maxMemory -}}
{{- $n := regexFind "^[0-9]+" $q | int64 -}}
{{- $unit := trimPrefix (toString $n) $q -}}
{{- $mult := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "K" 1000 "M" 1000000 "G" 1000000000 -}}
{{- if not (hasKey $mult $unit) }}{{ fail (printf "maxMemory %q: use Ki, Mi or Gi" $q) }}{{ end -}}
{{- div (mul $n (get $mult $unit) 4) 5 -}}
{{- end }}
