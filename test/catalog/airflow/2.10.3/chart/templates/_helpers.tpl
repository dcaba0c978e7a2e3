{{- define "airflow.labels" -}}
app.kubernetes.io/name: airflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "airflow.selector" -}}
app.kubernetes.io/name: airflow
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- /* Environment shared by every Airflow container. Passwords come from the
       components' Secrets and are expanded by the kubelet, never rendered. */ -}}
{{- define "airflow.env" -}}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.database.secretName }}, key: {{ .Values.database.secretKey }}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.secretName }}, key: {{ .Values.redis.secretKey }}}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  value: "postgresql+psycopg2://{{ .Values.database.user }}:$(DB_PASSWORD)@{{ .Values.database.host }}:{{ .Values.database.port }}/{{ .Values.database.name }}"
- name: AIRFLOW__CORE__EXECUTOR
  value: {{ .Values.executor | quote }}
- name: AIRFLOW__CORE__LOAD_EXAMPLES
  value: "False"
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Release.Name }}, key: fernet-key}
- name: AIRFLOW__WEBSERVER__SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Release.Name }}, key: webserver-secret-key}
- name: AIRFLOW__WEBSERVER__BASE_URL
  value: {{ .Values.webserver.baseUrl | quote }}
{{- if eq .Values.executor "CeleryExecutor" }}
- name: AIRFLOW__CELERY__BROKER_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ .Values.redis.host }}:{{ .Values.redis.port }}/0"
- name: AIRFLOW__CELERY__RESULT_BACKEND
  value: "db+postgresql://{{ .Values.database.user }}:$(DB_PASSWORD)@{{ .Values.database.host }}:{{ .Values.database.port }}/{{ .Values.database.name }}"
{{- end }}
{{- end }}

{{- define "airflow.podSecurity" -}}
runAsUser: 50000
runAsGroup: 0
fsGroup: 0
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "airflow.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end }}
