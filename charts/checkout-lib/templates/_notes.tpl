{{- define "checkout-lib.notes" -}}
{{- $name := include "checkout-lib.fullname" . -}}
{{ include "checkout-lib.serviceName" . }} is deployed as {{ $name }} in namespace {{ .Release.Namespace }}.

  In-cluster URL:  {{ include "checkout-lib.serviceUrl" (dict "ctx" . "service" (include "checkout-lib.serviceName" .)) }}
  Probes:          GET /healthz (alive), GET /readyz ({{ if .Values.mongodb }}database and keyrings ready{{ else }}ready once started{{ end }}), GET /metrics
  Try it:          kubectl -n {{ .Release.Namespace }} port-forward svc/{{ $name }} 8000:80
                   curl -s localhost:8000/readyz
{{- if .Values.keyrings }}
  Keyrings:        Secrets {{ include "checkout-lib.keyrings.secretName" (dict "ctx" . "kind" "jwt") }} and {{ include "checkout-lib.keyrings.secretName" (dict "ctx" . "kind" "internal") }} (key keyring.json) must exist;
                   the pods stay in ContainerCreating until they do.
{{- end }}
{{- if .Values.csrf }}
  Calls:           {{ range $i, $service := list "auth" "product" "cart" "order" }}{{ if $i }}, {{ end }}{{ include "checkout-lib.serviceUrl" (dict "ctx" $ "service" $service) }}{{ end }}
  CSRF secret:     Secret {{ include "checkout-lib.csrf.secretName" . }} (key {{ include "checkout-lib.csrf.secretKey" . }}){{ if not .Values.csrf.existingSecret }}, generated on install and kept{{ end }}
  Cookies:         {{ if eq (include "checkout-lib.cookieSecure" .) "true" }}Secure (served over TLS){{ else }}not Secure: set global.tls (or ingress.tls.enabled) where the shop is served over https{{ end }}
{{- end }}
{{- if .Values.mongodb }}
{{- if .Values.mongodb.enabled }}
{{- $engine := include "checkout-lib.mongodb.engine" . }}
{{- $image := include "checkout-lib.image" (dict "image" (index .Values.mongodb.engines $engine).image "ctx" .) }}
  MongoDB:         {{ include "checkout-lib.mongodb.fullname" . }} (StatefulSet), root credentials in Secret {{ include "checkout-lib.mongodb.secretName" . }}
{{- if eq $engine "ferretdb" }}
  Engine:          FerretDB on SQLite, {{ $image }}
                   SCRAM authentication on; data on the volume claim at /state;
                   probes and Prometheus metrics on port {{ .Values.mongodb.engines.ferretdb.debugPort }} (/debug/livez, /debug/readyz, /debug/metrics)
{{- else }}
  Engine:          MongoDB, {{ $image }}
                   authentication on; data on the volume claim at /data/db
{{- end }}
{{- else }}
  MongoDB:         external, {{ .Values.mongodb.externalUri }}
{{- end }}
{{- end }}
{{- if .Values.ingress.enabled }}
  Public routes:   {{ ternary "https" "http" .Values.ingress.tls.enabled }}://{{ .Values.ingress.host | default "<ingress address>" }}{{ first .Values.ingress.paths }}
{{- end }}
{{- end }}
