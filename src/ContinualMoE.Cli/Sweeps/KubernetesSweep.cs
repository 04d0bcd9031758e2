using System.Globalization;
using System.Text;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>What the Kubernetes Job needs beyond the sweep: an image with continual-moe on its PATH, and a volume that
/// holds the sweep folder (its data and weights paths must resolve inside the container too).</summary>
internal sealed record KubernetesOptions(string Image, string VolumeClaim, string MountPath, int Cpus, string Memory, int Parallelism);

/// <summary>
/// The alternative to Slurm for users with a Kubernetes cluster (docs/sweeps.md): an Indexed Job (batch/v1,
/// <c>completionMode: Indexed</c>) with one completion per run, each index retried once (<c>backoffLimitPerIndex</c>, Kubernetes 1.29+); each pod runs <c>continual-moe sweep-task</c> on the
/// run whose index is the pod's <c>JOB_COMPLETION_INDEX</c>. Complete runs finish at once, so applying the Job again
/// after a failure reruns only what is missing.
/// </summary>
internal static class KubernetesSweep
{
    public static string Write(SweepFolder sweep, KubernetesOptions options)
    {
        var path = Path.Combine(sweep.Subfolder("k8s"), "job.yaml");
        AtomicFile.WriteAllText(path, Manifest(sweep, options));
        AnsiConsole.MarkupLine($"Wrote [bold]{Markup.Escape(path)}[/] ({sweep.Runs.Count} indexed completions). Put the sweep folder on the volume " +
                               $"'{Markup.Escape(options.VolumeClaim)}' as {Markup.Escape(MountedFolder(sweep, options))}, then: kubectl apply -f {Markup.Escape(path)}");
        return path;
    }

    internal static string MountedFolder(SweepFolder sweep, KubernetesOptions options) =>
        options.MountPath.TrimEnd('/') + "/" + Path.GetFileName(sweep.Path);

    internal static string Manifest(SweepFolder sweep, KubernetesOptions options)
    {
        var cpus = options.Cpus.ToString(CultureInfo.InvariantCulture);
        var folder = MountedFolder(sweep, options);
        var command = $"exec continual-moe sweep-task {folder} --index \"$JOB_COMPLETION_INDEX\" --threads {cpus}";
        var yaml = new StringBuilder();
        yaml.AppendLine($"# Written by continual-moe sweep --k8s for the sweep '{sweep.Name}' (docs/sweeps.md).");
        yaml.AppendLine("apiVersion: batch/v1");
        yaml.AppendLine("kind: Job");
        yaml.AppendLine("metadata:");
        yaml.AppendLine($"  name: {JobName(sweep.Name)}");
        yaml.AppendLine("  labels:");
        yaml.AppendLine("    app.kubernetes.io/name: continual-moe");
        yaml.AppendLine($"    continual-moe/sweep: {Label(sweep.Name)}");
        yaml.AppendLine("spec:");
        yaml.AppendLine("  completionMode: Indexed");
        yaml.AppendLine($"  completions: {sweep.Runs.Count}");
        yaml.AppendLine($"  parallelism: {Math.Min(options.Parallelism, sweep.Runs.Count)}");
        yaml.AppendLine("  backoffLimitPerIndex: 1");
        yaml.AppendLine("  template:");
        yaml.AppendLine("    metadata:");
        yaml.AppendLine("      labels:");
        yaml.AppendLine("        app.kubernetes.io/name: continual-moe");
        yaml.AppendLine("    spec:");
        yaml.AppendLine("      restartPolicy: Never");
        yaml.AppendLine("      containers:");
        yaml.AppendLine("        - name: run");
        yaml.AppendLine($"          image: {Scalar(options.Image)}");
        yaml.AppendLine("          command: [\"sh\", \"-c\"]");
        yaml.AppendLine($"          args: [{Scalar(command)}]");
        yaml.AppendLine("          env:");
        yaml.AppendLine("            - name: OMP_NUM_THREADS");
        yaml.AppendLine($"              value: \"{cpus}\"");
        yaml.AppendLine("          resources:");
        yaml.AppendLine("            requests:");
        yaml.AppendLine($"              cpu: \"{cpus}\"");
        yaml.AppendLine($"              memory: {Scalar(options.Memory)}");
        yaml.AppendLine("            limits:");
        yaml.AppendLine($"              cpu: \"{cpus}\"");
        yaml.AppendLine($"              memory: {Scalar(options.Memory)}");
        yaml.AppendLine("          volumeMounts:");
        yaml.AppendLine("            - name: sweeps");
        yaml.AppendLine($"              mountPath: {Scalar(options.MountPath)}");
        yaml.AppendLine("      volumes:");
        yaml.AppendLine("        - name: sweeps");
        yaml.AppendLine("          persistentVolumeClaim:");
        yaml.AppendLine($"            claimName: {Scalar(options.VolumeClaim)}");
        return yaml.ToString();
    }

    /// <summary>A DNS-1123 label for metadata.name: lowercase letters, digits and '-', at most 63 characters.</summary>
    internal static string JobName(string sweepName)
    {
        var builder = new StringBuilder("cmoe-");
        foreach (var c in sweepName.ToLowerInvariant()) builder.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        var name = builder.ToString();
        if (name.Length > 63) name = name[..63];
        return name.TrimEnd('-');
    }

    private static string Label(string text) => JobName(text)["cmoe-".Length..] is { Length: > 0 } label ? label : "sweep";

    /// <summary>A YAML double-quoted scalar (JSON string syntax is valid YAML).</summary>
    private static string Scalar(string text) => System.Text.Json.JsonSerializer.Serialize(text, YamlString);

    private static readonly System.Text.Json.JsonSerializerOptions YamlString = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
