{{/*
The service's own database: a single-member StatefulSet with a headless Service, and root
credentials in a Secret that is generated once and kept (or taken from
mongodb.auth.existingSecret, which must hold the keys mongodb-root-username and
mongodb-root-password). mongodb.engine picks the server; mongodb.engines.<engine> holds its image,
resources and own settings:

- mongodb: the official image; its entrypoint makes the root user on first start.
- ferretdb: FerretDB v1.24 with its SQLite backend; it makes the root user on first start too.

The services get the same MONGO_URI (authSource=admin) and credentials from either.
*/}}

{{/* StatefulSet names stay under 53 characters: the controller-revision-hash label adds 11. */}}
{{- define "checkout-lib.mongodb.fullname" -}}
{{- printf "%s-mongodb" (include "checkout-lib.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "checkout-lib.mongodb.headlessName" -}}
{{- printf "%s-headless" (include "checkout-lib.mongodb.fullname" .) }}
{{- end }}

{{/*
The database pods' own ServiceAccount (they never call the Kubernetes API either): created with the
service's when serviceAccount.create is true, else the service's named one (or "default").
*/}}
{{- define "checkout-lib.mongodb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "checkout-lib.mongodb.fullname" . }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "checkout-lib.mongodb.serviceAccount" -}}
{{- if and .Values.mongodb.enabled .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "checkout-lib.mongodb.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "database") | nindent 4 }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{- define "checkout-lib.mongodb.secretName" -}}
{{- .Values.mongodb.auth.existingSecret | default (include "checkout-lib.mongodb.fullname" .) }}
{{- end }}

{{- define "checkout-lib.mongodb.database" -}}
{{- .Values.mongodb.database | default (include "checkout-lib.serviceName" .) }}
{{- end }}

{{- define "checkout-lib.mongodb.uri" -}}
{{- if .Values.mongodb.enabled }}
{{- $name := include "checkout-lib.mongodb.fullname" . }}
{{- printf "mongodb://%s-0.%s.%s.svc.%s:27017/?authSource=admin" $name (include "checkout-lib.mongodb.headlessName" .) .Release.Namespace (include "checkout-lib.clusterDomain" .) }}
{{- else }}
{{- required "mongodb.externalUri is required when mongodb.enabled is false" .Values.mongodb.externalUri }}
{{- end }}
{{- end }}

{{- define "checkout-lib.mongodb.secret" -}}
{{- if and .Values.mongodb.enabled (not .Values.mongodb.auth.existingSecret) }}
{{- $data := dict "mongodb-root-username" .Values.mongodb.auth.rootUsername "mongodb-root-password" (randAlphaNum 32) }}
{{- $labels := include "checkout-lib.labels" (dict "ctx" . "component" "database") }}
{{- include "checkout-lib.generatedSecret" (dict "ctx" . "name" (include "checkout-lib.mongodb.secretName" .) "labels" $labels "data" $data) }}
{{- end }}
{{- end }}

{{- define "checkout-lib.mongodb.headlessService" -}}
{{- if .Values.mongodb.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "checkout-lib.mongodb.headlessName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "database") | nindent 4 }}
spec:
  clusterIP: None
  # The pod's DNS name exists before it is ready, so clients can start connecting early.
  publishNotReadyAddresses: true
  selector:
    {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "database") | nindent 4 }}
  ports:
    - name: mongodb
      port: 27017
      targetPort: mongodb
      protocol: TCP
{{- end }}
{{- end }}

{{/* The engine in use; the values schema refuses any other, this guards a chart rendered without it. */}}
{{- define "checkout-lib.mongodb.engine" -}}
{{- $engine := .Values.mongodb.engine | default "mongodb" }}
{{- if not (hasKey .Values.mongodb.engines $engine) }}
{{- fail (printf "mongodb.engine %q is not one of: %s" $engine (keys .Values.mongodb.engines | sortAlpha | join ", ")) }}
{{- end }}
{{- $engine }}
{{- end }}

{{- define "checkout-lib.mongodb.statefulset" -}}
{{- if .Values.mongodb.enabled }}
{{- $m := .Values.mongodb }}
{{- $engine := include "checkout-lib.mongodb.engine" . }}
{{- $e := index $m.engines $engine }}
{{- $secret := include "checkout-lib.mongodb.secretName" . }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ include "checkout-lib.mongodb.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "database") | nindent 4 }}
spec:
  serviceName: {{ include "checkout-lib.mongodb.headlessName" . }}
  # One member: a standalone mongod (no replica set), or FerretDB, whose SQLite files take one
  # writer; none while the chart hibernates (the volume claim stays).
  replicas: {{ ternary 0 1 (.Values.hibernate | default false) }}
  podManagementPolicy: OrderedReady
  updateStrategy:
    type: RollingUpdate
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: {{ ternary "Retain" "Delete" $m.storage.retainOnDelete }}
    whenScaled: Retain
  selector:
    matchLabels:
      {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "database") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "checkout-lib.labels" (dict "ctx" . "component" "database") | nindent 8 }}
      {{- if eq $engine "ferretdb" }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $e.debugPort | quote }}
        prometheus.io/path: /debug/metrics
      {{- end }}
    spec:
      serviceAccountName: {{ include "checkout-lib.mongodb.serviceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- toYaml $m.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 30
      containers:
        {{- include (printf "checkout-lib.mongodb.container.%s" $engine) (dict "ctx" . "engine" $e "secret" $secret) | trim | nindent 8 }}
      volumes:
        {{- if eq $engine "mongodb" }}
        - name: configdb
          emptyDir:
            sizeLimit: 16Mi
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
  volumeClaimTemplates:
    - apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: data
        labels:
          {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "database") | nindent 10 }}
      spec:
        accessModes:
          - ReadWriteOnce
        {{- with $m.storage.className }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $m.storage.size | quote }}
{{- end }}
{{- end }}

{{/* The root credentials from the database Secret, as environment variables named by the engine. */}}
{{- define "checkout-lib.mongodb.credentialsEnv" -}}
- name: {{ .username }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: mongodb-root-username
- name: {{ .password }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: mongodb-root-password
{{- end }}

{{/* The official mongo image. Call with (dict "ctx" $ "engine" <engines.mongodb> "secret" <name>). */}}
{{- define "checkout-lib.mongodb.container.mongodb" -}}
{{- $m := .ctx.Values.mongodb }}
- name: mongodb
  image: {{ include "checkout-lib.image" (dict "image" .engine.image "ctx" .ctx) | quote }}
  imagePullPolicy: {{ .engine.image.pullPolicy }}
  # The image's entrypoint turns the root credentials into an admin user on first start
  # and then runs mongod with --auth --bind_ip_all.
  args:
    - --wiredTigerCacheSizeGB
    - {{ .engine.wiredTigerCacheSizeGB | quote }}
  env:
    {{- include "checkout-lib.mongodb.credentialsEnv" (dict "secret" .secret "username" "MONGO_INITDB_ROOT_USERNAME" "password" "MONGO_INITDB_ROOT_PASSWORD") | nindent 4 }}
    # mongosh (the readiness probe) keeps state under $HOME.
    - name: HOME
      value: /tmp
  ports:
    - name: mongodb
      containerPort: 27017
      protocol: TCP
  startupProbe:
    tcpSocket:
      port: mongodb
    periodSeconds: 5
    failureThreshold: 60
  livenessProbe:
    tcpSocket:
      port: mongodb
    periodSeconds: 20
    timeoutSeconds: 5
    failureThreshold: 6
  readinessProbe:
    exec:
      command:
        - mongosh
        - --quiet
        - --norc
        - --eval
        - "db.adminCommand('ping').ok"
    periodSeconds: 10
    timeoutSeconds: 10
    failureThreshold: 6
  resources:
    {{- toYaml .engine.resources | nindent 4 }}
  securityContext:
    {{- toYaml $m.securityContext | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: /data/db
    - name: configdb
      mountPath: /data/configdb
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/*
FerretDB v1.24 on SQLite, from an image holding only /ferretdb (no shell): every setting is a flag
here, none is left to the image's environment, so upstream's image and one built offline behave
alike. The credentials stay in the environment because the debug listener's /debug/vars shows the
command line. Call with (dict "ctx" $ "engine" <engines.ferretdb> "secret" <name>).
*/}}
{{- define "checkout-lib.mongodb.container.ferretdb" -}}
{{- $m := .ctx.Values.mongodb }}
- name: ferretdb
  image: {{ include "checkout-lib.image" (dict "image" .engine.image "ctx" .ctx) | quote }}
  imagePullPolicy: {{ .engine.image.pullPolicy }}
  args:
    - --handler=sqlite
    # The databases (one <db>.sqlite file each) and state.json (instance id, telemetry choice)
    # live on the volume claim; the root filesystem is read-only.
    - --sqlite-url=file:/state/
    - --state-dir=/state
    - --listen-addr=0.0.0.0:27017
    # Probes (/debug/livez, /debug/readyz) and Prometheus metrics (/debug/metrics).
    - --debug-addr=0.0.0.0:{{ .engine.debugPort }}
    # Never report to beacon.ferretdb.com; the flag also locks the setting against the
    # setFreeMonitoring command.
    - --telemetry=disable
    # Without it FerretDB on SQLite accepts any credentials, or none. With it, clients must
    # authenticate with SCRAM-SHA-256 or SCRAM-SHA-1, as with mongod --auth.
    - --test-enable-new-auth
    # On first start (no admin database yet) the root user is made in admin, which is where
    # the services authenticate (authSource=admin). Later starts leave it as it is.
    - --setup-database=admin
    - --log-level={{ .engine.logLevel }}
    - --log-format=json
  env:
    {{- include "checkout-lib.mongodb.credentialsEnv" (dict "secret" .secret "username" "FERRETDB_SETUP_USERNAME" "password" "FERRETDB_SETUP_PASSWORD") | nindent 4 }}
    # A second lock on telemetry: with it set, a flag asking for telemetry stops the server.
    - name: DO_NOT_TRACK
      value: "1"
    # Go's soft memory limit: the collector works harder before the container's limit is hit.
    - name: GOMEMLIMIT
      valueFrom:
        resourceFieldRef:
          containerName: ferretdb
          resource: limits.memory
  ports:
    - name: mongodb
      containerPort: 27017
      protocol: TCP
    - name: debug
      containerPort: {{ .engine.debugPort }}
      protocol: TCP
  # livez: the listener accepts connections. readyz: also an authenticated ping through that
  # listener with the setup credentials, so a Secret that no longer matches the stored user
  # (the user is only made on first start) keeps the pod unready.
  startupProbe:
    httpGet:
      path: /debug/livez
      port: debug
    periodSeconds: 5
    failureThreshold: 60
  livenessProbe:
    httpGet:
      path: /debug/livez
      port: debug
    periodSeconds: 20
    timeoutSeconds: 5
    failureThreshold: 6
  readinessProbe:
    httpGet:
      path: /debug/readyz
      port: debug
    periodSeconds: 10
    timeoutSeconds: 10
    failureThreshold: 6
  resources:
    {{- toYaml .engine.resources | nindent 4 }}
  securityContext:
    {{- toYaml $m.securityContext | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: /state
    # SQLite's temporary files (large sorts, index builds).
    - name: tmp
      mountPath: /tmp
{{- end }}
