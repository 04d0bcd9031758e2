using System.Diagnostics;
using ContinualMoE.Backbones;
using ContinualMoE.Experiments;
using ContinualMoE.Training;

namespace ContinualMoE.Benchmarks;

/// <summary>One end-to-end benchmark row: a whole continual run of one method at one precision.</summary>
public sealed record EndToEndResult(
    string Method, string Backbone, string Precision, int Tasks, int Epochs,
    double FinalAverageAccuracy, double WallSeconds, TrainerTimes Times,
    double BackboneGflop, double MatmulGflops, long PeakResidentBytes)
{
    /// <summary>Training images per second of the training loop (data, forward, backward and optimiser time).</summary>
    public double TrainImagesPerSecond => Times.TrainImages / Math.Max(1e-9, Times.Data + Times.Forward + Times.Backward + Times.Optimizer);
    public double TestImagesPerSecond => Times.TestImages / Math.Max(1e-9, Times.Evaluation);
    /// <summary>Backbone GFLOP (forward and implied backward) over the whole wall time.</summary>
    public double AchievedGflops => BackboneGflop / WallSeconds;
    /// <summary>Achieved over the same process's matmul GFLOP/s at the run's precision.</summary>
    public double FractionOfMatmul => AchievedGflops / MatmulGflops;
}

/// <summary>
/// <c>continual-moe bench run</c> (issue 16 §3): runs a fixed small continual run per method, timing where the wall time
/// goes (<see cref="TrainerTimes"/>), counting the backbone's analytic FLOPs (<see cref="BackboneWork"/>) and comparing
/// their rate to a matmul measured in the same process at the same precision. Peak memory is the process's resident
/// high-water mark, reset before each run (Linux; 0 elsewhere).
/// </summary>
public static class EndToEndBenchmark
{
    /// <summary>Runs <paramref name="config"/> (its method and precision) from <paramref name="weights"/> to the end.</summary>
    public static EndToEndResult Run(RunConfig config, string? weights, double matmulGflops, CancellationToken cancellation = default)
    {
        PeakMemory.Reset();
        var clock = Stopwatch.StartNew();
        using var experiment = Experiment.Build(config, weights);
        experiment.Backbone.Work.Reset();
        var trainer = experiment.Trainer();
        var results = trainer.Run(experiment.Learner, cancellation: cancellation);
        var wall = clock.Elapsed.TotalSeconds;
        var work = experiment.Backbone.Work;
        var last = results.Accuracy.TaskCount - 1;
        var final = Enumerable.Range(0, last + 1).Average(i => results.Accuracy[i, last]);
        return new EndToEndResult(config.Method, config.Backbone, ComputePrecision.Name(experiment.Backbone.ComputeType),
            config.Tasks, config.Epochs, final, wall, trainer.Times, (work.ForwardFlops + work.BackwardFlops) / 1e9,
            matmulGflops, PeakMemory.ResidentBytes());
    }

    /// <summary>The process's peak resident memory (VmHWM), resettable through /proc/self/clear_refs.</summary>
    public static class PeakMemory
    {
        public static void Reset()
        {
            try { File.WriteAllText("/proc/self/clear_refs", "5"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }

        public static long ResidentBytes()
        {
            try
            {
                var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            }
            catch (IOException) { return 0; }
        }
    }
}
