using System.Diagnostics;
using System.Threading.Channels;
using ContinualMoE.Data;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Deployment;

namespace ContinualMoE.Cli.Service;

/// <summary>
/// The one place the service predicts. <see cref="IContinualLearner.Predict"/> mutates learner state (routing flags,
/// per-sample prompts), so a model never runs two batches at once: each worker thread owns one replica of the served
/// version. Whenever a worker is free, a batcher thread merges the waiting requests into a batch of up to
/// <see cref="MaxBatchImages"/> images for it; the worker predicts and answers each. Concurrent requests thus share
/// batches (throughput) instead of queueing on a lock.
/// <para>Several workers with fewer libtorch threads each avoid intra-op threads waiting on each other (on a shared
/// machine an OpenMP thread that loses its core stalls its partner: in isolation on 2 busy cores, one thread per replica
/// cost 4.8–5.4 CPU ms per micro-ViT image, two threads in one model 4.6–8.9 ms), but they split the waiting requests
/// into smaller batches; in the service under load on the shared 2-core VM two workers were not faster than one, so one
/// is the default.</para>
/// <para>A new version is swapped in for every worker at once, between batches (no answer of the old version follows
/// one of the new).</para>
/// </summary>
internal sealed class InferenceQueue : IDisposable
{
    private sealed record Request(ImageBuffer[] Images, string[] Sources, int TopK, TaskCompletionSource<ServedPredictions> Done);

    private readonly Channel<Request> requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });   // read by the batcher alone
    private readonly Thread[] workers;
    private readonly Thread batcher;
    /// <summary>Batches formed by the batcher, taken by whichever worker is free.</summary>
    private readonly Channel<(List<Request> Requests, int Images)> formedBatches = Channel.CreateUnbounded<(List<Request>, int)>();
    private readonly SemaphoreSlim freeWorkers;
    private DeployedModel[] replicas;
    /// <summary>Workers hold it (read) while they compute a batch; a swap takes it (write) to replace every replica at once.</summary>
    private readonly ReaderWriterLockSlim switching = new(LockRecursionPolicy.NoRecursion);
    private long batches, predictedImages, computeTicks;

    /// <summary>Batches run, images predicted and seconds the workers spent computing them (stacking, the model, the
    /// answers; summed over workers) since the start: GET /health reports them, the load test derives the mean batch
    /// size and how busy the workers were from them.</summary>
    public QueueCounts Counts => new(Interlocked.Read(ref batches), Interlocked.Read(ref predictedImages),
        Stopwatch.GetElapsedTime(0, Interlocked.Read(ref computeTicks)).TotalSeconds, workers.Length);
    public int MaxBatchImages { get; }
    /// <summary>Longest wait for more requests after the first of a batch (only while requests come concurrently).</summary>
    public TimeSpan MaxBatchDelay { get; }
    /// <summary>A pause between arrivals this long ends the batch early.</summary>
    public TimeSpan BatchGap { get; } = TimeSpan.FromMilliseconds(2);
    /// <summary>libtorch intra-op threads of each worker.</summary>
    public int ThreadsPerWorker { get; }

    /// <param name="replicas">One model per worker, all of the same version (loaded separately: a model is not shared).</param>
    /// <param name="threadsPerWorker">libtorch threads of each worker (default: the configured threads divided among the workers).</param>
    public InferenceQueue(IReadOnlyList<DeployedModel> replicas, int maxBatchImages = 64, TimeSpan? maxBatchDelay = null, int? threadsPerWorker = null)
    {
        if (replicas.Count == 0) throw new ArgumentException("at least one model", nameof(replicas));
        this.replicas = [.. replicas];
        MaxBatchImages = maxBatchImages;
        MaxBatchDelay = maxBatchDelay ?? TimeSpan.FromMilliseconds(10);
        ThreadsPerWorker = threadsPerWorker ?? Math.Max(1, ComputeDevice.ConfiguredThreads() / replicas.Count);
        freeWorkers = new SemaphoreSlim(replicas.Count);
        workers = Enumerable.Range(0, replicas.Count).Select(i => new Thread(() => Work(i)) { IsBackground = true, Name = $"inference {i}" }).ToArray();
        foreach (var worker in workers) worker.Start();
        batcher = new Thread(Batch) { IsBackground = true, Name = "batcher" };
        batcher.Start();
    }

    public int Workers => workers.Length;

    /// <summary>The manifest of the version being served.</summary>
    public PackageManifest Manifest => Volatile.Read(ref replicas)[0].Manifest;

    /// <summary>One decoded upload as the model takes it (<see cref="DeployedModel.PrepareImage"/>). Called on the request
    /// threads, so images are resized and normalised in parallel while the workers compute; versions of one package share
    /// their run config, hence the pipeline, so an image prepared before a version switch suits the next version.</summary>
    public ImageBuffer Prepare(RawImage image) => Volatile.Read(ref replicas)[0].PrepareImage(image);

    /// <summary>Predicts images made by <see cref="Prepare"/> in a coming batch, with the version that predicted them; the
    /// queue returns their buffers to the pool.</summary>
    public Task<ServedPredictions> Predict(ImageBuffer[] images, string[] sources, int topK)
    {
        var done = new TaskCompletionSource<ServedPredictions>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!requests.Writer.TryWrite(new Request(images, sources, topK, done))) done.SetException(new ObjectDisposedException("the service is stopping"));
        return done.Task;
    }

    /// <summary>Serves <paramref name="next"/> (one model per worker, <see cref="Workers"/> of them, of the new version)
    /// from the next batches on; the previous replicas are disposed. Waits for the batches being computed, so the task
    /// completes once every worker serves the new version (a job reported done is the version served).</summary>
    public Task Swap(IReadOnlyList<DeployedModel> next)
    {
        if (next.Count != workers.Length) throw new ArgumentException($"one model per worker ({workers.Length}), not {next.Count}", nameof(next));
        DeployedModel[] incoming = [.. next];
        return Task.Run(() =>
        {
            DeployedModel[] old;
            switching.EnterWriteLock();
            try { old = Interlocked.Exchange(ref replicas, incoming); }
            finally { switching.ExitWriteLock(); }
            foreach (var model in old) model.Dispose();
        });
    }

    /// <summary>Runs <paramref name="work"/> on a served replica from its worker thread (plots, summaries that call the learner).</summary>
    public Task<T> WithModel<T>(Func<DeployedModel, T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        pendingWork.Enqueue(model => { try { done.SetResult(work(model)); } catch (Exception e) { done.SetException(e); } });
        requests.Writer.TryWrite(new Request([], [], 0, new TaskCompletionSource<ServedPredictions>()));   // wake a worker
        return done.Task;
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<Action<DeployedModel>> pendingWork = new();

    /// <summary>Forms batches, one whenever a worker is free: while every worker computes, requests wait in the queue,
    /// so the next batch takes all of them (with one worker this is the single-worker queue it was).</summary>
    private void Batch()
    {
        var reader = requests.Reader;
        var lastBatchRequests = 0;
        try
        {
            while (true)
            {
                freeWorkers.Wait();
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;
                var batch = new List<Request>();
                var images = 0;
                bool Take()
                {
                    var took = false;
                    while (images < MaxBatchImages && reader.TryRead(out var request))
                    {
                        if (request.Images.Length == 0) { request.Done.TrySetResult(new ServedPredictions(0, [])); continue; }
                        batch.Add(request);
                        images += request.Images.Length;
                        took = true;
                    }
                    return took;
                }
                Take();
                // Under concurrent load the clients answered by the last batch send their next requests a moment later:
                // without waiting for them, batches shrink to the one or two requests that came first. So while the last
                // batch held several requests, keep collecting as long as requests keep arriving (gaps under BatchGap), up
                // to MaxBatchDelay. A lone client (last batch of one request) is answered without delay.
                if (batch.Count > 0 && lastBatchRequests > 1 && MaxBatchDelay > TimeSpan.Zero)
                {
                    var start = Stopwatch.GetTimestamp();
                    var lastArrival = start;
                    while (images < MaxBatchImages && Stopwatch.GetElapsedTime(start) < MaxBatchDelay)
                    {
                        if (Take()) lastArrival = Stopwatch.GetTimestamp();
                        else if (Stopwatch.GetElapsedTime(lastArrival) > BatchGap) break;
                        else Thread.Sleep(1);
                    }
                }
                if (batch.Count > 0) lastBatchRequests = batch.Count;
                if (batch.Count == 0 && pendingWork.IsEmpty) { freeWorkers.Release(); continue; }
                formedBatches.Writer.TryWrite((batch, images));   // an empty batch runs the pending work
            }
        }
        finally { formedBatches.Writer.TryComplete(); }
    }

    private void Work(int index)
    {
        ComputeDevice.ConfigureThreads(ThreadsPerWorker);   // per thread in libtorch's OpenMP build
        var reader = formedBatches.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            if (!reader.TryRead(out var next)) continue;
            switching.EnterReadLock();
            try
            {
                var model = replicas[index];
                while (pendingWork.TryDequeue(out var action)) action(model);
                if (next.Requests.Count > 0) Compute(model, next.Requests, next.Images);
            }
            finally
            {
                switching.ExitReadLock();
                freeWorkers.Release();
            }
        }
    }

    private void Compute(DeployedModel model, List<Request> batch, int images)
    {
        var computing = Stopwatch.GetTimestamp();
        try
        {
            var predictions = model.Predict(batch.SelectMany(r => r.Images).ToList(), batch.SelectMany(r => r.Sources).ToList(), batch.Max(r => r.TopK));
            var offset = 0;
            foreach (var request in batch)
            {
                var mine = predictions.Skip(offset).Take(request.Images.Length)
                    .Select(p => p with { Top = p.Top.Take(request.TopK).ToList() }).ToList();
                offset += request.Images.Length;
                request.Done.TrySetResult(new ServedPredictions(model.Manifest.Version, mine));
            }
        }
        catch (Exception e)
        {
            foreach (var request in batch) request.Done.TrySetException(e);
        }
        finally
        {
            foreach (var request in batch) foreach (var image in request.Images) image.Return();
            Interlocked.Add(ref computeTicks, Stopwatch.GetTimestamp() - computing);
            Interlocked.Increment(ref batches);
            Interlocked.Add(ref predictedImages, images);
        }
    }

    public void Dispose()
    {
        requests.Writer.TryComplete();
        batcher.Join();
        foreach (var worker in workers) worker.Join();
        foreach (var model in replicas) model.Dispose();
        switching.Dispose();
        freeWorkers.Dispose();
    }
}

/// <summary>Predictions of one request and the version that made them.</summary>
internal sealed record ServedPredictions(int Version, IReadOnlyList<ImagePrediction> Predictions);

/// <summary>The inference queue's counters (<see cref="InferenceQueue.Counts"/>); <see cref="ComputeSeconds"/> is summed
/// over the <see cref="Workers"/>.</summary>
internal readonly record struct QueueCounts(long Batches, long Images, double ComputeSeconds, int Workers);
