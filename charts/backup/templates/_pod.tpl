{{/*
The pod of a backup or a restore: python -m checkout_backup with the four databases' addresses and
root credentials, the claim at /backups, a scratch /tmp. Call with (dict "ctx" $ "action" "backup")
or "restore"; its report is the container's termination message, which the operator reads.
*/}}
{{- define "backup.pod" -}}
{{- $ctx := .ctx }}
{{- $values := $ctx.Values }}
{{- $domain := $values.clusterDomain | default (include "checkout-lib.clusterDomain" $ctx) }}
metadata:
  labels:
    {{- include "checkout-lib.labels" (dict "ctx" $ctx "component" .action) | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ printf "%s-backup" $ctx.Release.Name }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: {{ .action }}
      image: {{ include "checkout-lib.image" (dict "image" $values.image "ctx" $ctx) | quote }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      command: ["python", "-m", "checkout_backup"]
      args:
        {{- range $values.databases }}
        - --database={{ . }}
        {{- end }}
        {{- if eq .action "restore" }}
        # A new Checkout's databases may still be starting: wait for each up to 5 minutes.
        - --timeout=300
        {{- end }}
        - {{ .action }}
        {{- if eq .action "backup" }}
        - --checkout={{ $ctx.Release.Name }}
        - --namespace={{ $ctx.Release.Namespace }}
        - --target=/backups
        - --retention={{ $values.backup.retention }}
        {{- with $values.target.capacity }}
        - --capacity={{ . }}
        {{- end }}
        {{- else }}
        - --source=/backups
        - --archive={{ $values.restore.archive }}
        {{- end }}
      env:
        {{- range $values.databases }}
        {{- $name := printf "%s-%s-mongodb" $ctx.Release.Name . }}
        {{- $prefix := printf "CHECKOUT_BACKUP_%s_" (upper .) }}
        - name: {{ $prefix }}URI
          value: {{ printf "mongodb://%s-0.%s-headless.%s.svc.%s:27017/?authSource=admin" $name $name $ctx.Release.Namespace $domain | quote }}
        - name: {{ $prefix }}USERNAME
          valueFrom:
            secretKeyRef:
              name: {{ $name }}
              key: mongodb-root-username
        - name: {{ $prefix }}PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ $name }}
              key: mongodb-root-password
        {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      terminationMessagePolicy: File
      volumeMounts:
        - name: backups
          mountPath: /backups
          {{- if eq .action "restore" }}
          readOnly: true
          {{- end }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: backups
      persistentVolumeClaim:
        claimName: {{ (eq .action "backup" | ternary $values.target.claimName $values.restore.claimName) | required (printf "%s: the claim to use is required" (eq .action "backup" | ternary "target.claimName" "restore.claimName")) }}
    - name: tmp
      emptyDir:
        sizeLimit: 1Gi
{{- end }}
