using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>Resources of every array task, as sbatch options.</summary>
/// <param name="Throttle">Array tasks running at once (the <c>%N</c> of <c>--array</c>).</param>
/// <param name="Sbatch">The sbatch program (a site wrapper, or a stand-in in tests).</param>
internal sealed record SlurmOptions(string? Partition, string? Time, int Cpus, int? Gpus, int Throttle, string Sbatch = "sbatch", bool Submit = true);

/// <summary>
/// Submits a sweep to Slurm (docs/sweeps.md): a job array with one task per incomplete run (task id = run index in
/// sweep.json, <c>%throttle</c>), each task running <c>continual-moe sweep-task</c> with its cores as libtorch threads and
/// logging to logs/slurm-ARRAYJOB_TASK.out, then an aggregation job (<c>continual-moe report</c>) that starts after
/// every array task has ended however it ended (<c>--dependency=afterany</c>), so failed runs are listed in the report.
/// Submitting again submits only the runs that are still incomplete; the claims keep a run that is still running from
/// a previous array from being executed twice.
/// </summary>
internal static class SlurmSweep
{
    public sealed record Submission(int Number, IReadOnlyList<int> Indices, string ArrayScript, string ReportScript, string? ArrayJob, string? ReportJob);

    public static Submission? Submit(SweepFolder sweep, SlurmOptions options)
    {
        var missing = Enumerable.Range(0, sweep.Runs.Count).Where(i => !sweep.IsComplete(sweep.Runs[i])).ToList();
        if (missing.Count == 0)
        {
            AnsiConsole.MarkupLine($"Every run of [bold]{Markup.Escape(sweep.Name)}[/] is complete; nothing to submit (continual-moe report {Markup.Escape(sweep.Path)}).");
            return null;
        }
        var slurm = sweep.Subfolder("slurm");
        sweep.Subfolder("logs");
        var number = Directory.EnumerateFiles(slurm, "array-*.sbatch").Count() + 1;
        var arrayScript = Path.Combine(slurm, $"array-{number}.sbatch");
        var reportScript = Path.Combine(slurm, $"report-{number}.sbatch");
        AtomicFile.WriteAllText(arrayScript, ArrayScript(sweep, missing, options));
        AtomicFile.WriteAllText(reportScript, ReportScript(sweep, options));
        AtomicFile.WriteAllText(Path.Combine(slurm, "index.tsv"),
            "index\trun\n" + string.Concat(sweep.Runs.Select((r, i) => $"{i}\t{r.Name}\n")));
        if (!options.Submit)
        {
            AnsiConsole.MarkupLine($"Wrote [bold]{Markup.Escape(arrayScript)}[/] ({missing.Count} runs) and [bold]{Markup.Escape(reportScript)}[/]; submit with:");
            AnsiConsole.WriteLine($"  jid=$({options.Sbatch} --parsable {arrayScript}) && {options.Sbatch} --dependency=afterany:${{jid%%;*}} {reportScript}");
            return new Submission(number, missing, arrayScript, reportScript, null, null);
        }
        var arrayJob = Sbatch(options.Sbatch, [arrayScript]);
        var reportJob = Sbatch(options.Sbatch, [$"--dependency=afterany:{arrayJob}", reportScript]);
        var record = new JsonObject
        {
            ["submission"] = number, ["time"] = DateTimeOffset.UtcNow.ToString("O"), ["array_job"] = arrayJob, ["report_job"] = reportJob,
            ["indices"] = new JsonArray(missing.Select(i => (JsonNode?)i).ToArray()),
        };
        File.AppendAllText(Path.Combine(slurm, "submissions.jsonl"), record.ToJsonString() + "\n");
        AnsiConsole.MarkupLine($"Submitted job array [bold]{arrayJob}[/] ({missing.Count} of {sweep.Runs.Count} runs, at most {options.Throttle} at once) and report job [bold]{reportJob}[/].");
        AnsiConsole.MarkupLine($"Logs: {Markup.Escape(Path.Combine(sweep.Path, "logs"))}; report when done: {Markup.Escape(Path.Combine(sweep.Path, "report"))}");
        return new Submission(number, missing, arrayScript, reportScript, arrayJob, reportJob);
    }

    /// <summary>The array job: one task per index in <paramref name="indices"/>.</summary>
    internal static string ArrayScript(SweepFolder sweep, IReadOnlyList<int> indices, SlurmOptions options)
    {
        var (fileName, prefix) = SelfCommand.Resolve();
        var script = Header(sweep, $"cmoe-{sweep.Name}", options, Path.Combine(sweep.Path, "logs", "slurm-%A_%a.out"));
        script.AppendLine($"#SBATCH --array={IndexRanges(indices)}%{options.Throttle}");
        script.AppendLine($"#SBATCH --cpus-per-task={options.Cpus}");
        if (options.Gpus is int gpus) script.AppendLine($"#SBATCH --gpus-per-task={gpus}");
        script.AppendLine("set -euo pipefail");
        script.AppendLine("# libtorch gets exactly the task's cores.");
        script.AppendLine("threads=\"${SLURM_CPUS_PER_TASK:-1}\"");
        script.AppendLine("export OMP_NUM_THREADS=\"$threads\" MKL_NUM_THREADS=\"$threads\"");
        script.AppendLine($"exec {Command(fileName, prefix)} sweep-task {Quote(sweep.Path)} --index \"$SLURM_ARRAY_TASK_ID\" --threads \"$threads\"");
        return script.ToString();
    }

    /// <summary>The aggregation job; its dependency on the array is given at submission.</summary>
    internal static string ReportScript(SweepFolder sweep, SlurmOptions options)
    {
        var (fileName, prefix) = SelfCommand.Resolve();
        var script = Header(sweep, $"cmoe-{sweep.Name}-report", options with { Gpus = null }, Path.Combine(sweep.Path, "logs", "slurm-report-%j.out"));
        script.AppendLine("#SBATCH --cpus-per-task=1");
        script.AppendLine("set -euo pipefail");
        script.AppendLine($"exec {Command(fileName, prefix)} report {Quote(sweep.Path)}");
        return script.ToString();
    }

    private static StringBuilder Header(SweepFolder sweep, string jobName, SlurmOptions options, string output)
    {
        var script = new StringBuilder();
        script.AppendLine("#!/bin/bash");
        script.AppendLine($"# Written by continual-moe sweep --slurm for the sweep in {sweep.Path} (docs/sweeps.md).");
        script.AppendLine($"#SBATCH --job-name={jobName}");
        script.AppendLine($"#SBATCH --output={output}");
        if (options.Partition is { } partition) script.AppendLine($"#SBATCH --partition={partition}");
        if (options.Time is { } time) script.AppendLine($"#SBATCH --time={time}");
        return script;
    }

    /// <summary>Slurm's compact index list: 0-3,5,7-9.</summary>
    internal static string IndexRanges(IReadOnlyList<int> indices)
    {
        var sorted = indices.Distinct().Order().ToList();
        var parts = new List<string>();
        for (var i = 0; i < sorted.Count;)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? sorted[i].ToString(CultureInfo.InvariantCulture) : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(',', parts);
    }

    private static string Command(string fileName, IReadOnlyList<string> prefix) => string.Join(' ', new[] { fileName }.Concat(prefix).Select(Quote));

    private static string Quote(string text) => text.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+' or ':' or '=')
        ? text
        : "'" + text.Replace("'", "'\\''") + "'";

    /// <summary>Runs sbatch --parsable; returns the job id (the part before ';' when a cluster name follows).</summary>
    private static string Sbatch(string sbatch, IReadOnlyList<string> arguments)
    {
        var info = new ProcessStartInfo(sbatch) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("--parsable");
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ContinualMoEException($"cannot run '{sbatch}' ({e.Message}); is Slurm installed (scripts/local-slurm start gives a one-node cluster)?", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            var output = stdout.Result.Trim();
            if (process.ExitCode != 0 || output.Length == 0)
                throw new ContinualMoEException($"sbatch {string.Join(' ', arguments)} failed (exit code {process.ExitCode}): {stderr.Trim().Split('\n')[0]}");
            return output.Split('\n')[^1].Split(';')[0].Trim();
        }
    }
}
