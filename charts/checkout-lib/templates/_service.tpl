{{/*
The chart's own objects: ServiceAccount, ConfigMap, Service, Deployment, PDB, HPA, Ingress.

The templates render what the chart's values describe (its values.schema.json allows exactly its
keys): the four API services have a database (`mongodb:`) and mount the keyrings (`keyrings:`,
`jwt:`); the storefront has neither, and signs its forms with a CSRF secret (`csrf:`).
*/}}

{{- define "checkout-lib.serviceaccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "checkout-lib.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# The services never call the Kubernetes API.
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{/* Non-secret settings, read by the service as environment variables (envFrom). */}}
{{- define "checkout-lib.configmap.data" -}}
SERVICE_NAME: {{ include "checkout-lib.serviceName" . | quote }}
HOST: "0.0.0.0"
PORT: {{ .Values.containerPort | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
{{- if .Values.mongodb }}
MONGO_URI: {{ include "checkout-lib.mongodb.uri" . | quote }}
MONGO_DB: {{ include "checkout-lib.mongodb.database" . | quote }}
{{- end }}
{{- if .Values.keyrings }}
JWT_KEYRING_FILE: {{ printf "%s/keyring.json" (include "checkout-lib.keyrings.mountDir" "jwt") | quote }}
INTERNAL_KEYRING_FILE: {{ printf "%s/keyring.json" (include "checkout-lib.keyrings.mountDir" "internal") | quote }}
{{- end }}
{{- with .Values.jwt }}
JWT_ISSUER: {{ .issuer | quote }}
JWT_AUDIENCE: {{ .audience | quote }}
{{- with .accessTokenTtlSeconds }}
ACCESS_TOKEN_TTL_SECONDS: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.csrf }}
COOKIE_SECURE: {{ include "checkout-lib.cookieSecure" . | quote }}
{{- end }}
{{- $proxies := .Values.trustedProxies | default (.Values.global | default dict).trustedProxies }}
{{- with $proxies }}
TRUSTED_PROXIES: {{ join "," . | quote }}
{{- end }}
{{- $tracing := merge (dict) (.Values.tracing | default dict) ((.Values.global | default dict).tracing | default dict) }}
{{- with $tracing.otlpEndpoint }}
{{- /* Distributed traces (docs/tracing.md): on with an endpoint, the service's own or the shared one. */}}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
TRACING_SAMPLE_RATIO: {{ (hasKey $tracing "sampleRatio" | ternary $tracing.sampleRatio 1) | toString | quote }}
CHECKOUT_NAME: {{ $.Release.Name | quote }}
POD_NAMESPACE: {{ $.Release.Namespace | quote }}
{{- end }}
{{- range $service := list "auth" "product" "cart" "order" }}
{{ upper $service }}_URL: {{ include "checkout-lib.serviceUrl" (dict "ctx" $ "service" $service) | quote }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "checkout-lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
data:
  {{- include "checkout-lib.configmap.data" . | nindent 2 }}
{{- end }}

{{- define "checkout-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.containerPort | quote }}
    prometheus.io/path: /metrics
spec:
  type: ClusterIP
  selector:
    {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 4 }}
  ports:
    # Port 80 is part of the contract: the other services derive this URL without asking.
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
{{- end }}

{{- define "checkout-lib.container.env" -}}
{{- if .Values.mongodb }}
{{- $secret := include "checkout-lib.mongodb.secretName" . }}
- name: MONGO_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: mongodb-root-username
- name: MONGO_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: mongodb-root-password
{{- end }}
{{- if .Values.csrf }}
- name: CSRF_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "checkout-lib.csrf.secretName" . }}
      key: {{ include "checkout-lib.csrf.secretKey" . }}
{{- end }}
{{- with .Values.bootstrapAdmin }}
{{- if .existingSecret }}
- name: BOOTSTRAP_ADMIN_EMAIL
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .emailKey }}
- name: BOOTSTRAP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "checkout-lib.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  {{- if or .Values.hibernate .Values.restoring }}
  replicas: 0
  {{- else if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Settings arrive as environment variables, so a changed ConfigMap needs new pods. The
        # keyrings are files and deliberately not summed here: rotating them needs no restart.
        checksum/config: {{ include "checkout-lib.configmap.data" . | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.containerPort | quote }}
        prometheus.io/path: /metrics
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "checkout-lib.serviceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ include "checkout-lib.serviceName" . }}
          image: {{ include "checkout-lib.image" (dict "image" .Values.image "ctx" .) | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ .Values.containerPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "checkout-lib.fullname" . }}
          env:
            {{- include "checkout-lib.container.env" . | trim | nindent 12 }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          {{- with .Values.shutdownDelaySeconds }}
          # Endpoints leave the Service (and the ingress's view of it) while the pod is told to
          # stop; serving a few seconds longer first means no request meets a closed port.
          lifecycle:
            preStop:
              sleep:
                seconds: {{ . }}
          {{- end }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- if .Values.keyrings }}
            {{- include "checkout-lib.keyrings.volumeMounts" . | trim | nindent 12 }}
            {{- end }}
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- if .Values.keyrings }}
        {{- include "checkout-lib.keyrings.volumes" . | trim | nindent 8 }}
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 14 }}
{{- end }}

{{- define "checkout-lib.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  {{- if hasKey .Values.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
{{- end }}
{{- end }}

{{- define "checkout-lib.hpa" -}}
{{- if and .Values.autoscaling.enabled (not (or .Values.hibernate .Values.restoring)) }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "checkout-lib.fullname" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/*
Ingress rules for a list of routes. Call with (dict "routes" (list (dict "path" p "service" s "port" 80)) "ingress" <ingress values>).
Prefix matching is per path segment, so "/api/get-product" does not cover "/api/get-product-one":
every seed route is listed on its own. Paths under /internal/ are never listed.
*/}}
{{- define "checkout-lib.ingress.spec" -}}
{{- with .ingress.className }}
ingressClassName: {{ . }}
{{- end }}
{{- if .ingress.tls.enabled }}
tls:
  - hosts:
      - {{ .ingress.host | quote }}
    secretName: {{ .ingress.tls.secretName }}
{{- end }}
rules:
{{- if .ingress.host }}
  - host: {{ .ingress.host | quote }}
    http:
{{- else }}
  - http:
{{- end }}
      paths:
        {{- range .routes }}
        - path: {{ .path }}
          pathType: Prefix
          backend:
            service:
              name: {{ .service }}
              port:
                name: http
        {{- end }}
{{- end }}

{{/* This service's own Ingress, used when a service chart is installed on its own (e.g. by the operator). */}}
{{- define "checkout-lib.ingress" -}}
{{- if .Values.ingress.enabled }}
{{- $routes := list }}
{{- range .Values.ingress.paths }}
{{- $routes = append $routes (dict "path" . "service" (include "checkout-lib.fullname" $)) }}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- include "checkout-lib.ingress.spec" (dict "routes" $routes "ingress" .Values.ingress) | trim | nindent 2 }}
{{- end }}
{{- end }}
