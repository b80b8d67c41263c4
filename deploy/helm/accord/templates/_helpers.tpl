{{/* Names and labels. */}}
{{- define "accord.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "accord.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "accord.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accord.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "accord.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "accord.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "accord.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Environment shared by every pod: database URL and signing key from Secrets. */}}
{{- define "accord.env" -}}
- name: ACCORD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.urlSecret.name }}
      key: {{ .Values.database.urlSecret.key }}
- name: ACCORD_DATA_DIR
  value: /var/lib/accord
{{- if .Values.publicUrl }}
- name: ACCORD_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
{{- end }}
{{- if .Values.auditSigningKey.secretName }}
- name: ACCORD_AUDIT_SIGNING_KEY_FILE
  value: /etc/accord/keys/{{ .Values.auditSigningKey.key }}
{{- end }}
- name: ACCORD_LEASE_SECONDS
  value: {{ .Values.leaseSeconds | quote }}
- name: ACCORD_SYNC_CONCURRENCY
  value: {{ .Values.syncConcurrency | quote }}
- name: ACCORD_REPLICA_ID
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "accord.envFrom" -}}
{{- range .Values.sourceSecrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/*
The pod spec of a gateway process. Call with (dict "root" $ "component" "gateway"
"args" (list ...)).
*/}}
{{- define "accord.podSpec" -}}
{{- $root := .root -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: accord
    image: {{ include "accord.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- include "accord.env" $root | nindent 6 }}
    {{- with (include "accord.envFrom" $root) }}
    envFrom:
      {{- . | trim | nindent 6 }}
    {{- end }}
    ports:
      - name: http
        containerPort: 8420
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      initialDelaySeconds: 10
      periodSeconds: 20
    # /readyz answers 503 until the database is reachable and migrated to this
    # version's schema (the pre-upgrade hook migrates; replicas never serve an old one).
    readinessProbe:
      httpGet: {path: /readyz, port: http}
      periodSeconds: 5
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    {{- with $root.Values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - {name: data, mountPath: /var/lib/accord}
      - {name: tmp, mountPath: /tmp}
      {{- if $root.Values.auditSigningKey.secretName }}
      - {name: audit-key, mountPath: /etc/accord/keys, readOnly: true}
      {{- end }}
      {{- if $root.Values.config }}
      - {name: config, mountPath: /etc/accord/config, readOnly: true}
      {{- end }}
volumes:
  - name: data
    emptyDir: {}
  - name: tmp
    emptyDir: {}
  {{- if $root.Values.auditSigningKey.secretName }}
  - name: audit-key
    secret:
      secretName: {{ $root.Values.auditSigningKey.secretName }}
      defaultMode: 0440
  {{- end }}
  {{- if $root.Values.config }}
  - name: config
    configMap:
      name: {{ include "accord.fullname" $root }}-config
  {{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
