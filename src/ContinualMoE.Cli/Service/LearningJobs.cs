using System.Collections.Concurrent;
using ContinualMoE.Deployment;
using ContinualMoE.Training;

namespace ContinualMoE.Cli.Service;

/// <summary>A learning job's state as GET /jobs/{id} reports it.</summary>
internal sealed record JobStatus(string Id, string State, string Source, double Progress, string Stage, DateTimeOffset Started,
    DateTimeOffset? Finished, int? Version, double[]? TaskAccuracy, string? Error);

/// <summary>
/// Learning jobs of the service, one at a time: each loads its own copy of the latest package version (the served copy
/// keeps answering), learns the task, writes the next version atomically, then hands the learned model (and a replica
/// loaded from the new version for every further worker) to the <see cref="InferenceQueue"/>, which switches to them
/// between batches.
/// </summary>
internal sealed class LearningJobs(string packageFolder, InferenceQueue queue)
{
    private readonly ConcurrentDictionary<string, JobStatus> jobs = new();
    private readonly object gate = new();
    private Task? running;

    public JobStatus? Get(string id) => jobs.TryGetValue(id, out var job) ? job : null;

    /// <summary>Starts a job, or returns null when one is running.</summary>
    public JobStatus? Start(TaskSource source, CancellationToken stopping)
    {
        lock (gate)
        {
            if (running is { IsCompleted: false }) return null;
            var id = Guid.NewGuid().ToString("N")[..12];
            var status = new JobStatus(id, "running", source.ToString(), 0, "loading the model", DateTimeOffset.UtcNow, null, null, null, null);
            jobs[id] = status;
            running = Task.Run(() => Run(id, source, stopping), CancellationToken.None);
            return status;
        }
    }

    /// <summary>Completes when the running job (if any) has finished.</summary>
    public Task Idle => running ?? Task.CompletedTask;

    private void Run(string id, TaskSource source, CancellationToken stopping)
    {
        DeployedModel? model = null;
        PackageWriter? writer = null;
        var replicas = new List<DeployedModel>();
        try
        {
            // All cores for training: a thread takes libtorch's thread count from the last setting, here the workers' own.
            ComputeDevice.ConfigureThreads();
            // The package's write lock first (a `learn` on the same package meanwhile is refused, and vice versa).
            writer = ModelPackage.BeginVersion(packageFolder);
            model = DeployedModel.Load(packageFolder);
            var evaluation = model.Learn(source, new Progress(this, id), stopping);
            Update(id, s => s with { Stage = "writing the new version", Progress = 0.99 });
            model.Save(writer);
            var version = model.Manifest.Version;
            replicas.Add(model);
            model = null;
            while (replicas.Count < queue.Workers) replicas.Add(DeployedModel.Load(packageFolder, version));
            var switched = queue.Swap(replicas);
            replicas.Clear();
            switched.Wait(stopping);
            Update(id, s => s with { State = "succeeded", Progress = 1, Stage = "done", Finished = DateTimeOffset.UtcNow, Version = version, TaskAccuracy = evaluation.Accuracy });
        }
        catch (Exception e)
        {
            var message = e is ContinualMoEException or OperationCanceledException ? e.Message : $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
            Update(id, s => s with { State = "failed", Finished = DateTimeOffset.UtcNow, Error = message });
        }
        finally { model?.Dispose(); foreach (var replica in replicas) replica.Dispose(); writer?.Dispose(); }
    }

    private void Update(string id, Func<JobStatus, JobStatus> change) => jobs.AddOrUpdate(id, _ => throw new KeyNotFoundException(id), (_, s) => change(s));

    /// <summary>Progress within the current phase (phases are not known in advance, so each phase runs 0..1 again).</summary>
    private sealed class Progress(LearningJobs owner, string id) : ITrainingObserver
    {
        private int epochs, batches;

        public void PhaseStarted(int task, string phase, int epochs, int batchesPerEpoch)
        {
            this.epochs = epochs; batches = batchesPerEpoch;
            owner.Update(id, s => s with { Stage = $"task {task + 1}: {phase}", Progress = 0 });
        }

        public void BatchFinished(int task, string phase, int epoch, int batch, double loss, double imagesPerSecond)
        {
            var fraction = (epoch * (double)batches + batch) / Math.Max(1, epochs * batches);
            owner.Update(id, s => s with { Stage = $"task {task + 1}: {phase}, epoch {epoch + 1}/{epochs}, loss {loss:F3}", Progress = Math.Min(0.98, fraction) });
        }
    }
}
