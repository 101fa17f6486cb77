{{/*
The service's own MongoDB: a single-member StatefulSet of the official `mongo` image with
authentication on, a headless Service, and root credentials in a Secret that is generated once and
kept (or taken from mongodb.auth.existingSecret, which must hold the keys mongodb-root-username
and mongodb-root-password).
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

{{- define "checkout-lib.mongodb.statefulset" -}}
{{- if .Values.mongodb.enabled }}
{{- $m := .Values.mongodb }}
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
  # A standalone mongod: one member, no replica set.
  replicas: 1
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
    spec:
      serviceAccountName: {{ include "checkout-lib.mongodb.serviceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- toYaml $m.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: mongodb
          image: {{ include "checkout-lib.image" (dict "image" $m.image "ctx" .) | quote }}
          imagePullPolicy: {{ $m.image.pullPolicy }}
          # The image's entrypoint turns the root credentials into an admin user on first start
          # and then runs mongod with --auth --bind_ip_all.
          args:
            - --wiredTigerCacheSizeGB
            - {{ $m.wiredTigerCacheSizeGB | quote }}
          env:
            - name: MONGO_INITDB_ROOT_USERNAME
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: mongodb-root-username
            - name: MONGO_INITDB_ROOT_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: mongodb-root-password
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
            {{- toYaml $m.resources | nindent 12 }}
          securityContext:
            {{- toYaml $m.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /data/db
            - name: configdb
              mountPath: /data/configdb
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: configdb
          emptyDir:
            sizeLimit: 16Mi
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
