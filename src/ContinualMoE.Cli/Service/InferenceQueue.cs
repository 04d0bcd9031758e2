using System.Diagnostics;
using System.Threading.Channels;
using ContinualMoE.Data;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Deployment;

namespace ContinualMoE.Cli.Service;

/// <summary>
/// The one place the service predicts. <see cref="IContinualLearner.Predict"/> mutates learner state (routing flags,
/// per-sample prompts), so requests are never run concurrently: one worker thread takes the waiting requests, merges
/// them into batches of up to <see cref="MaxBatchImages"/> images, predicts, and answers each. Concurrent requests thus
/// share batches (throughput) instead of queueing on a lock. A new model version is swapped in between batches.
/// </summary>
internal sealed class InferenceQueue : IDisposable
{
    private sealed record Request(ImageBuffer[] Images, string[] Sources, int TopK, TaskCompletionSource<IReadOnlyList<ImagePrediction>> Done);

    private readonly Channel<Request> requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread worker;
    private DeployedModel model;
    private (DeployedModel Model, TaskCompletionSource Switched)? replacement;
    private readonly object replacementGate = new();
    private int lastBatchRequests;
    private long batches, predictedImages, computeTicks;
    /// <summary>Batches run, images predicted and seconds the worker spent computing them (stacking, the model, the
    /// answers) since the start: GET /health reports them, the load test derives the mean batch size and how busy the
    /// model was from them.</summary>
    public QueueCounts Counts => new(Interlocked.Read(ref batches), Interlocked.Read(ref predictedImages),
        Stopwatch.GetElapsedTime(0, Interlocked.Read(ref computeTicks)).TotalSeconds);
    public int MaxBatchImages { get; }
    /// <summary>Longest wait for more requests after the first of a batch (only while requests come concurrently).</summary>
    public TimeSpan MaxBatchDelay { get; }
    /// <summary>A pause between arrivals this long ends the batch early.</summary>
    public TimeSpan BatchGap { get; } = TimeSpan.FromMilliseconds(2);

    public InferenceQueue(DeployedModel model, int maxBatchImages = 64, TimeSpan? maxBatchDelay = null)
    {
        this.model = model;
        MaxBatchImages = maxBatchImages;
        MaxBatchDelay = maxBatchDelay ?? TimeSpan.FromMilliseconds(10);
        worker = new Thread(Work) { IsBackground = true, Name = "inference" };
        worker.Start();
    }

    /// <summary>The manifest of the version being served.</summary>
    public PackageManifest Manifest => Volatile.Read(ref model).Manifest;

    /// <summary>One decoded upload as the model takes it (<see cref="DeployedModel.PrepareImage"/>). Called on the request
    /// threads, so images are resized and normalised in parallel while the worker computes; versions of one package share
    /// their run config, hence the pipeline, so an image prepared before a version switch suits the next version.</summary>
    public ImageBuffer Prepare(RawImage image) => Volatile.Read(ref model).PrepareImage(image);

    /// <summary>Predicts images made by <see cref="Prepare"/> in the next batch; the queue returns their buffers to the pool.</summary>
    public Task<IReadOnlyList<ImagePrediction>> Predict(ImageBuffer[] images, string[] sources, int topK)
    {
        var done = new TaskCompletionSource<IReadOnlyList<ImagePrediction>>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!requests.Writer.TryWrite(new Request(images, sources, topK, done))) done.SetException(new ObjectDisposedException("the service is stopping"));
        return done.Task;
    }

    /// <summary>Serves <paramref name="next"/> from the next batch on; the previous model is disposed by the worker. The
    /// task completes once the worker has switched (so a job reported done is the version served).</summary>
    public Task Swap(DeployedModel next)
    {
        var switched = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (replacementGate)
        {
            if (replacement is { } pending) { pending.Model.Dispose(); pending.Switched.TrySetResult(); }
            replacement = (next, switched);
        }
        requests.Writer.TryWrite(new Request([], [], 0, new TaskCompletionSource<IReadOnlyList<ImagePrediction>>()));   // wake the worker
        return switched.Task;
    }

    private void SwitchToReplacement()
    {
        (DeployedModel Model, TaskCompletionSource Switched)? next;
        lock (replacementGate) { next = replacement; replacement = null; }
        if (next is not { } n) return;
        var old = model;
        Volatile.Write(ref model, n.Model);
        old.Dispose();
        n.Switched.TrySetResult();
    }

    /// <summary>Runs <paramref name="work"/> on the served model from the worker thread (plots, summaries that call the learner).</summary>
    public Task<T> WithModel<T>(Func<DeployedModel, T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        pendingWork.Enqueue(() => { try { done.SetResult(work(model)); } catch (Exception e) { done.SetException(e); } });
        requests.Writer.TryWrite(new Request([], [], 0, new TaskCompletionSource<IReadOnlyList<ImagePrediction>>()));
        return done.Task;
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<Action> pendingWork = new();

    private void Work()
    {
        ComputeDevice.ConfigureThreads();
        var reader = requests.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            SwitchToReplacement();
            while (pendingWork.TryDequeue(out var action)) action();
            var batch = new List<Request>();
            var images = 0;
            bool Take()
            {
                var took = false;
                while (images < MaxBatchImages && reader.TryRead(out var request))
                {
                    if (request.Images.Length == 0) { request.Done.TrySetResult([]); continue; }
                    batch.Add(request);
                    images += request.Images.Length;
                    took = true;
                }
                return took;
            }
            Take();
            if (batch.Count == 0) continue;
            // Under concurrent load the clients answered by the last batch send their next requests a moment later:
            // without waiting for them, batches shrink to the one or two requests that came first. So while the last
            // batch held several requests, keep collecting as long as requests keep arriving (gaps under BatchGap), up
            // to MaxBatchDelay. A lone client (last batch of one request) is answered without delay.
            if (lastBatchRequests > 1 && MaxBatchDelay > TimeSpan.Zero)
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
            lastBatchRequests = batch.Count;
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
                    request.Done.TrySetResult(mine);
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
    }

    public void Dispose()
    {
        requests.Writer.TryComplete();
        worker.Join();
        model.Dispose();
        lock (replacementGate) { replacement?.Model.Dispose(); replacement?.Switched.TrySetResult(); replacement = null; }
    }
}

/// <summary>The inference queue's counters (<see cref="InferenceQueue.Counts"/>).</summary>
internal readonly record struct QueueCounts(long Batches, long Images, double ComputeSeconds);
