using System.CommandLine;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Sweeps;
using k8s;
using k8s.Models;

namespace ContinualMoE.Tests.Sweeps;

public class ClusterSweepTests
{
    private static JsonObject FourRuns() => new()
    {
        ["name"] = "four",
        ["base"] = SweepTestFiles.TinyBase(),
        ["axes"] = new JsonObject { ["method"] = new JsonArray("ncm", "finetune-head"), ["seed"] = new JsonArray(1, 2) },
    };

    [Fact]
    public void SlurmScriptsHaveOneArrayTaskPerMissingRunAndAReportJobAfterAny()
    {
        using var files = new SweepTestFiles();
        var spec = files.Spec("four", FourRuns());
        var folder = files.Folder("out");
        // A stand-in sbatch that records its arguments and answers like sbatch --parsable.
        var calls = Path.Combine(files.Root, "sbatch-calls.txt");
        var sbatch = Path.Combine(files.Root, "sbatch");
        File.WriteAllText(sbatch, $"#!/bin/bash\necho \"$*\" >> '{calls}'\nn=$(wc -l < '{calls}')\necho \"$((1000 + n));cluster\"\n");
        File.SetUnixFileMode(sbatch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        string[] Args() => [spec, "--output", folder, "--slurm", "--partition", "gpu", "--time", "01:00:00", "--cpus", "3", "--gpus", "1", "--throttle", "2", "--sbatch", sbatch];
        Assert.Equal(0, SweepCommand.Create().Parse(Args()).Invoke());
        var array = File.ReadAllLines(Path.Combine(folder, "slurm", "array-1.sbatch"));
        Assert.Equal("#!/bin/bash", array[0]);
        var directives = array.Where(l => l.StartsWith("#SBATCH ")).Select(l => l["#SBATCH ".Length..]).ToList();
        Assert.Contains("--array=0-3%2", directives);
        Assert.Contains("--cpus-per-task=3", directives);
        Assert.Contains("--gpus-per-task=1", directives);
        Assert.Contains("--partition=gpu", directives);
        Assert.Contains("--time=01:00:00", directives);
        Assert.Contains($"--output={folder}/logs/slurm-%A_%a.out", directives);
        var exec = Assert.Single(array, l => l.StartsWith("exec "));
        Assert.Contains($"sweep-task {folder} --index \"$SLURM_ARRAY_TASK_ID\" --threads \"$threads\"", exec);
        Assert.Contains(array, l => l.StartsWith("export OMP_NUM_THREADS=\"$threads\""));
        var report = File.ReadAllLines(Path.Combine(folder, "slurm", "report-1.sbatch"));
        Assert.Contains(report, l => l.StartsWith("exec ") && l.EndsWith($" report {folder}"));
        Assert.DoesNotContain(report, l => l.Contains("--gpus"));
        var submitted = File.ReadAllLines(calls);
        Assert.Equal($"--parsable {folder}/slurm/array-1.sbatch", submitted[0]);
        // The cluster name after ';' is not part of the job id.
        Assert.Equal($"--parsable --dependency=afterany:1001 {folder}/slurm/report-1.sbatch", submitted[1]);

        // Runs 0 and 2 complete (here, as a Slurm task would run them); submitting again covers only 1 and 3.
        var sweep = SweepFolder.Open(folder);
        Assert.Equal(0, SweepTask.Execute(sweep, 0, CancellationToken.None));
        Assert.Equal(0, SweepTask.Execute(sweep, 2, CancellationToken.None));
        Assert.Equal(0, SweepCommand.Create().Parse(Args()).Invoke());
        Assert.Contains("#SBATCH --array=1,3%2", File.ReadAllLines(Path.Combine(folder, "slurm", "array-2.sbatch")));
        Assert.Equal($"--parsable --dependency=afterany:1003 {folder}/slurm/report-2.sbatch", File.ReadAllLines(calls)[3]);
        var submissions = File.ReadAllLines(Path.Combine(folder, "slurm", "submissions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["1001", "1003"], submissions.Select(s => s["array_job"]!.GetValue<string>()));
    }

    /// <summary>
    /// The real thing: scripts/local-slurm starts a one-node cluster (munged, slurmctld, slurmd; installed by
    /// scripts/cmoe test when missing), the sweep submits 4 runs as an array with an aggregation job, the test waits for
    /// the report; then one run's results are removed and re-submission runs only that index.
    /// </summary>
    [Fact]
    public void FourRunSweepThroughALocalSlurmCluster()
    {
        using var files = new SweepTestFiles();
        var script = Path.Combine(Path.GetDirectoryName(RepositoryPaths.Configs)!, "scripts", "local-slurm");
        var cluster = Path.Combine(files.Root, "cluster");
        var (started, startOutput) = SweepTestFiles.Run(script, ["start", cluster], timeoutSeconds: 600);
        Assert.True(started == 0, $"scripts/local-slurm start failed: {startOutput}");
        try
        {
            var environment = new Dictionary<string, string> { ["SLURM_CONF"] = Path.Combine(cluster, "slurm.conf") };
            var spec = files.Spec("four", FourRuns());
            var folder = files.Folder("out");
            var summary = Path.Combine(folder, "report", "summary.json");
            var (code, output) = SweepTestFiles.Run(SweepTestFiles.StartInfoName(), [.. SweepTestFiles.CliPrefix(), "sweep", spec, "--output", folder, "--slurm", "--cpus", "1", "--throttle", "2"], environment);
            Assert.True(code == 0, output);
            JsonNode report = WaitForReport(summary, environment, "1");
            Assert.Equal(4, report["runs_complete"]!.GetValue<int>());
            Assert.Empty(report["runs_not_averaged"]!.AsArray());
            Assert.Equal(4, Directory.GetFiles(Path.Combine(folder, "logs"), "slurm-*_*.out").Length);
            Assert.All(SweepTestFiles.Attempts(folder), a => Assert.StartsWith("slurm:", a["executor"]!.GetValue<string>()));

            // A lost run: re-submission runs only its index, and the new report has it again.
            File.Delete(Path.Combine(folder, "runs", "finetune-head-seed1", "metrics.json"));
            File.Delete(summary);
            (code, output) = SweepTestFiles.Run(SweepTestFiles.StartInfoName(), [.. SweepTestFiles.CliPrefix(), "sweep", spec, "--output", folder, "--slurm", "--cpus", "1"], environment);
            Assert.True(code == 0, output);
            Assert.Contains("#SBATCH --array=2%8", File.ReadAllLines(Path.Combine(folder, "slurm", "array-2.sbatch")));
            report = WaitForReport(summary, environment, "2");
            Assert.Equal(4, report["runs_complete"]!.GetValue<int>());
            var events = SweepTestFiles.Attempts(folder).Where(a => a["run"]!.GetValue<string>() == "finetune-head-seed1").Select(a => a["event"]!.GetValue<string>());
            Assert.Equal(["started", "completed", "resumed", "completed"], events);
        }
        finally
        {
            SweepTestFiles.Run(script, ["stop", cluster]);
        }
    }

    private static JsonNode WaitForReport(string summary, IReadOnlyDictionary<string, string> environment, string submission)
    {
        var deadline = DateTime.UtcNow.AddMinutes(8);
        while (!File.Exists(summary) && DateTime.UtcNow < deadline) Thread.Sleep(500);
        if (!File.Exists(summary))
        {
            var (_, queue) = SweepTestFiles.Run("squeue", [], environment);
            Assert.Fail($"no report after submission {submission} within 8 minutes; squeue:\n{queue}");
        }
        return JsonNode.Parse(File.ReadAllText(summary))!;
    }

    [Fact]
    public void KubernetesManifestIsAnIndexedBatchV1JobOverEveryRun()
    {
        using var files = new SweepTestFiles();
        var spec = files.Spec("four", FourRuns());
        var folder = files.Folder("k8s-sweep");
        Assert.Equal(0, SweepCommand.Create().Parse([spec, "--output", folder, "--k8s", "--image", "registry.example/cmoe:1", "--cpus", "4", "--parallel", "3"]).Invoke());
        var yaml = File.ReadAllText(Path.Combine(folder, "k8s", "job.yaml"));
        // Strict: a field name that is not in the batch/v1 Job API (the client's models are generated from it) fails.
        var job = KubernetesYaml.Deserialize<V1Job>(yaml, strict: true);
        Assert.Equal(("batch/v1", "Job"), (job.ApiVersion, job.Kind));
        Assert.Equal("cmoe-four", job.Metadata.Name);
        Assert.Equal("Indexed", job.Spec.CompletionMode);
        Assert.Equal(4, job.Spec.Completions);
        Assert.Equal(3, job.Spec.Parallelism);
        Assert.Equal("Never", job.Spec.Template.Spec.RestartPolicy);
        var container = Assert.Single(job.Spec.Template.Spec.Containers);
        Assert.Equal("registry.example/cmoe:1", container.Image);
        Assert.Equal(["sh", "-c"], container.Command);
        Assert.Equal("exec continual-moe sweep-task /sweeps/k8s-sweep --index \"$JOB_COMPLETION_INDEX\" --threads 4", Assert.Single(container.Args));
        Assert.Equal("4", container.Env.Single(e => e.Name == "OMP_NUM_THREADS").Value);
        Assert.Equal("4", container.Resources.Requests["cpu"].ToString());
        var mount = Assert.Single(container.VolumeMounts);
        var volume = Assert.Single(job.Spec.Template.Spec.Volumes);
        Assert.Equal((volume.Name, "/sweeps"), (mount.Name, mount.MountPath));
        Assert.Equal("continual-moe-sweeps", volume.PersistentVolumeClaim.ClaimName);
        // A manifest with a misspelt field is refused by the same reader, so the check above can fail.
        Assert.ThrowsAny<Exception>(() => KubernetesYaml.Deserialize<V1Job>(yaml.Replace("completionMode:", "completionMod:"), strict: true));
    }
}
