{{/*
Least privilege on the network (networkPolicy.enabled, on by default): every pod of the service
and of its database is denied all traffic but what it needs.

- the service's pods take the public port ("http") from the ingress controller's pods, the same
  port from the services that call it (checkout-lib.calls) and, where they hold keyrings, from the
  operator's pods (which read /internal/v1/keys during a key rotation); they may reach cluster
  DNS, their own database and the services they call, on those ports only;
- the database's pods take 27017 from the service's pods and the release's backup and restore
  Jobs (charts/backup) only, and reach nothing.

The storefront has no keyrings and no database: its pods take "http" from the ingress controller
only, and reach cluster DNS and the four services.

Peers are the other services of the same release, chosen by their selector labels. Kubelet probes
come from the node, which NetworkPolicy implementations let through. extraIngress / extraEgress
add rules (e.g. a Prometheus that scrapes /metrics, or serviceUrls outside the release).
*/}}

{{/* Who calls whom: the service-to-service calls of services/<svc>/clients.py, auth's
user-deletion cascade, and the storefront (a backend-for-frontend) calling all four. */}}
{{- define "checkout-lib.calls" -}}
auth: [cart, order]
cart: [product]
order: [product, cart]
product: []
storefront: [auth, product, cart, order]
{{- end }}

{{- define "checkout-lib.networkPolicy.peer" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/name: {{ .service }}
    app.kubernetes.io/instance: {{ .ctx.Release.Name }}
    app.kubernetes.io/component: api
{{- end }}

{{- define "checkout-lib.networkPolicy.inNamespace" -}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ .namespace | default .ctx.Release.Namespace }}
{{- with .podLabels }}
podSelector:
  matchLabels:
    {{- toYaml . | nindent 4 }}
{{- else }}
podSelector: {}
{{- end }}
{{- end }}

{{- define "checkout-lib.networkPolicies" -}}
{{- $np := .Values.networkPolicy }}
{{- if $np.enabled }}
{{- $service := include "checkout-lib.serviceName" . }}
{{- $calls := fromYaml (include "checkout-lib.calls" .) }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "checkout-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    # The public port (the API, or the shop's pages), through the ingress controller.
    - from:
        - {{- include "checkout-lib.networkPolicy.inNamespace" (dict "ctx" . "namespace" $np.ingressController.namespace "podLabels" $np.ingressController.podLabels) | nindent 10 }}
      ports:
        - port: http
          protocol: TCP
    {{- if .Values.keyrings }}
    # The operator, reading the keys each pod has loaded (/internal/v1/keys).
    - from:
        - {{- include "checkout-lib.networkPolicy.inNamespace" (dict "ctx" . "namespace" $np.operator.namespace "podLabels" $np.operator.podLabels) | nindent 10 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- range $caller := keys $calls | sortAlpha }}
    {{- if has $service (get $calls $caller) }}
    # {{ $caller }} calls {{ $service }}.
    - from:
        - {{- include "checkout-lib.networkPolicy.peer" (dict "ctx" $ "service" $caller) | nindent 10 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    # Cluster DNS.
    - to:
        - {{- include "checkout-lib.networkPolicy.inNamespace" (dict "ctx" . "namespace" $np.dns.namespace "podLabels" $np.dns.podLabels) | nindent 10 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- if .Values.mongodb }}
    # Its own database.
    - to:
        - podSelector:
            matchLabels:
              {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "database") | nindent 14 }}
      ports:
        - port: 27017
          protocol: TCP
    {{- end }}
    {{- range $callee := get $calls $service | default list }}
    # {{ $service }} calls {{ $callee }}.
    - to:
        - {{- include "checkout-lib.networkPolicy.peer" (dict "ctx" $ "service" $callee) | nindent 10 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- $tracing := merge (dict) (.Values.tracing | default dict) ((.Values.global | default dict).tracing | default dict) }}
    {{- with $tracing.otlpEndpoint }}
    {{- $url := urlParse . }}
    {{- $hostPort := splitList ":" $url.host }}
    # Traces to the OTLP endpoint (wherever it is: a collector in another namespace, or outside).
    - ports:
        - port: {{ (len $hostPort | eq 2) | ternary (last $hostPort | int) (eq $url.scheme "https" | ternary 443 80) }}
          protocol: TCP
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- if .Values.mongodb }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "checkout-lib.mongodb.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" . "component" "database") | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "database") | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              {{- include "checkout-lib.selectorLabels" (dict "ctx" . "component" "api") | nindent 14 }}
        # The release's backup and restore Jobs (charts/backup).
        - podSelector:
            matchExpressions:
              - key: app.kubernetes.io/instance
                operator: In
                values: [{{ .Release.Name | quote }}]
              - key: app.kubernetes.io/component
                operator: In
                values: [backup, restore]
      ports:
        - port: 27017
          protocol: TCP
  # No egress: the database reaches nothing.
{{- end }}
{{- end }}
{{- end }}
