using System.CommandLine;
using ContinualMoE.Cli.Sweeps;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe sweep SPEC</c> (docs/sweeps.md): expands a sweep spec into runs with stable names and executes the
/// incomplete ones on this machine (then writes the report), or submits them as a Slurm job array (<c>--slurm</c>), or
/// writes a Kubernetes Indexed Job (<c>--k8s</c>). <c>continual-moe sweep-task</c> executes one run of a sweep folder
/// by index; it is what the local workers, Slurm array tasks and Kubernetes pods run.
/// </summary>
internal static class SweepCommand
{
    public static Command Create()
    {
        var spec = new Argument<string>("spec") { Description = "sweep spec JSON file (docs/sweeps.md), or a sweep folder (or its sweep.json) to resume" };
        var output = new Option<string?>("--output", "-o") { Description = "sweep folder (default: runs/sweep-<name>); running the sweep again on it resumes" };
        var parallel = new Option<int?>("--parallel") { Description = "runs at once on this machine (default: the spec's, else 1); cores are divided between them" };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads per run (default: cores / parallel)" };
        var slurm = new Option<bool>("--slurm") { Description = "submit a Slurm job array (one task per incomplete run) and a report job" };
        var partition = new Option<string?>("--partition") { Description = "Slurm partition" };
        var time = new Option<string?>("--time") { Description = "Slurm time limit per run, e.g. 02:00:00" };
        var cpus = new Option<int>("--cpus") { Description = "cores per run for Slurm or Kubernetes (libtorch threads)", DefaultValueFactory = _ => 2 };
        var gpus = new Option<int?>("--gpus") { Description = "GPUs per run for Slurm (--gpus-per-task; needs a CUDA build)" };
        var throttle = new Option<int>("--throttle") { Description = "Slurm array tasks running at once (--array ...%N)", DefaultValueFactory = _ => 8 };
        var sbatch = new Option<string>("--sbatch") { Description = "sbatch program", DefaultValueFactory = _ => "sbatch" };
        var noSubmit = new Option<bool>("--no-submit") { Description = "with --slurm: write the scripts and print the commands instead of submitting" };
        var k8s = new Option<bool>("--k8s") { Description = "write a Kubernetes Indexed Job manifest (k8s/job.yaml) instead of running" };
        var image = new Option<string>("--image") { Description = "Kubernetes: container image with continual-moe on its PATH", DefaultValueFactory = _ => "continual-moe:latest" };
        var volumeClaim = new Option<string>("--volume-claim") { Description = "Kubernetes: PersistentVolumeClaim holding the sweep folder", DefaultValueFactory = _ => "continual-moe-sweeps" };
        var mountPath = new Option<string>("--mount-path") { Description = "Kubernetes: where the volume is mounted in the pod", DefaultValueFactory = _ => "/sweeps" };
        var memory = new Option<string>("--memory") { Description = "Kubernetes: memory per run", DefaultValueFactory = _ => "4Gi" };

        var command = new Command("sweep", "run a sweep of runs (methods x datasets x tasks x seeds x any setting) locally, on Slurm or on Kubernetes");
        command.Arguments.Add(spec);
        foreach (var option in new Option[] { output, parallel, threads, slurm, partition, time, cpus, gpus, throttle, sbatch, noSubmit, k8s, image, volumeClaim, mountPath, memory })
            command.Options.Add(option);
        command.SetAction((parse, cancellation) =>
        {
            if (parse.GetValue(slurm) && parse.GetValue(k8s)) throw new ContinualMoEException("--slurm and --k8s: choose one");
            var (sweep, specParallel) = Open(parse.GetValue(spec)!, parse.GetValue(output));
            var runsAtOnce = parse.GetValue(parallel) ?? specParallel;
            if (runsAtOnce < 1) throw new ContinualMoEException("--parallel must be at least 1");
            if (parse.GetValue(cpus) < 1) throw new ContinualMoEException("--cpus must be at least 1");
            if (parse.GetValue(slurm))
            {
                if (parse.GetValue(throttle) < 1) throw new ContinualMoEException("--throttle must be at least 1");
                SlurmSweep.Submit(sweep, new SlurmOptions(parse.GetValue(partition), parse.GetValue(time), parse.GetValue(cpus), parse.GetValue(gpus),
                    parse.GetValue(throttle), parse.GetValue(sbatch)!, Submit: !parse.GetValue(noSubmit)));
                return Task.FromResult(0);
            }
            if (parse.GetValue(k8s))
            {
                KubernetesSweep.Write(sweep, new KubernetesOptions(parse.GetValue(image)!, parse.GetValue(volumeClaim)!, parse.GetValue(mountPath)!,
                    parse.GetValue(cpus), parse.GetValue(memory)!, runsAtOnce));
                return Task.FromResult(0);
            }
            return Task.FromResult(RunLocally(sweep, runsAtOnce, parse.GetValue(threads), cancellation));
        });
        return command;
    }

    /// <summary>The sweep folder a <c>sweep</c> argument names: a spec makes (or reopens) its folder; a sweep folder, or
    /// the <c>sweep.json</c> plan inside one, is reopened as it is, so a user can resume a sweep without its spec file.</summary>
    private static (SweepFolder Sweep, int Parallel) Open(string argument, string? output)
    {
        var path = Path.GetFullPath(argument);
        var folder = Directory.Exists(path) ? path
            : Path.GetFileName(path) == SweepFolder.PlanFileName && File.Exists(path) && SweepFolder.IsPlan(path) ? Path.GetDirectoryName(path)!
            : null;
        if (folder is null)
        {
            var loaded = SweepSpec.Load(path);
            return (SweepFolder.Prepare(output ?? Path.Combine("runs", $"sweep-{loaded.Name}"), loaded, path), loaded.Parallel);
        }
        if (output is not null && Path.GetFullPath(output) != folder)
            throw ContinualMoEException.ForFile(folder, $"this is a sweep folder; --output {output} names another one (leave --output out to resume this one)");
        var sweep = SweepFolder.Open(folder);
        return (sweep, SweepSpec.FromJson(sweep.Spec.DeepClone().AsObject(), Path.Combine(folder, SweepFolder.PlanFileName), sweep.Name).Parallel);
    }

    /// <summary>Runs the sweep here and writes its report; exit code 0 only when every run is complete.</summary>
    internal static int RunLocally(SweepFolder sweep, int parallel, int? threads, CancellationToken cancellation)
    {
        var outcome = LocalSweep.Run(sweep, parallel, threads, cancellation);
        if (outcome.Interrupted)
        {
            Spectre.Console.AnsiConsole.MarkupLine("[yellow]Sweep interrupted.[/] Run the same command again to resume it.");
            return 130;
        }
        SweepReport.Write(sweep);
        return outcome.Failed.Count == 0 ? 0 : 1;
    }

    public static Command CreateTask()
    {
        var folder = new Argument<string>("sweep-folder") { Description = "sweep folder (holds sweep.json)" };
        var index = new Option<int?>("--index") { Description = "run index (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)" };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: OMP_NUM_THREADS, else every core)" };
        var command = new Command("sweep-task", "execute one run of a sweep folder (what sweep workers, Slurm array tasks and Kubernetes pods run)") { Hidden = true };
        command.Arguments.Add(folder);
        command.Options.Add(index);
        command.Options.Add(threads);
        command.SetAction((parse, cancellation) =>
        {
            var sweep = SweepFolder.Open(parse.GetValue(folder)!);
            var i = parse.GetValue(index) ?? IndexFromEnvironment();
            if (parse.GetValue(threads) is int n)
            {
                if (n < 1) throw new ContinualMoEException("--threads must be at least 1");
                Environment.SetEnvironmentVariable("OMP_NUM_THREADS", n.ToString());
            }
            return Task.FromResult(SweepTask.Execute(sweep, i, cancellation));
        });
        return command;
    }

    private static int IndexFromEnvironment()
    {
        foreach (var variable in new[] { "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX" })
            if (int.TryParse(Environment.GetEnvironmentVariable(variable), out var value)) return value;
        throw new ContinualMoEException("sweep-task: give --index, or run inside a Slurm array task or an Indexed Job");
    }
}

/// <summary><c>continual-moe report SWEEP</c>: the sweep's tables and plots (<see cref="SweepReport"/>).</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var folder = new Argument<string>("sweep-folder") { Description = "sweep folder (holds sweep.json)" };
        var command = new Command("report", "tabulate a sweep: mean ± std over seeds per dataset x task count (Markdown, CSV, JSON) and plots; lists runs that are missing or failed");
        command.Arguments.Add(folder);
        command.SetAction(parse =>
        {
            SweepReport.Write(SweepFolder.Open(parse.GetValue(folder)!));
            return 0;
        });
        return command;
    }
}
