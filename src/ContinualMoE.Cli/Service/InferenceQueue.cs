using System.Threading.Channels;
using ContinualMoE.Data;
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
    private sealed record Request(RawImage[] Images, string[] Sources, int TopK, TaskCompletionSource<IReadOnlyList<ImagePrediction>> Done);

    private readonly Channel<Request> requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread worker;
    private DeployedModel model;
    private DeployedModel? replacement;
    public int MaxBatchImages { get; }

    public InferenceQueue(DeployedModel model, int maxBatchImages = 64)
    {
        this.model = model;
        MaxBatchImages = maxBatchImages;
        worker = new Thread(Work) { IsBackground = true, Name = "inference" };
        worker.Start();
    }

    /// <summary>The manifest of the version being served.</summary>
    public PackageManifest Manifest => Volatile.Read(ref model).Manifest;

    public Task<IReadOnlyList<ImagePrediction>> Predict(RawImage[] images, string[] sources, int topK)
    {
        var done = new TaskCompletionSource<IReadOnlyList<ImagePrediction>>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!requests.Writer.TryWrite(new Request(images, sources, topK, done))) done.SetException(new ObjectDisposedException("the service is stopping"));
        return done.Task;
    }

    /// <summary>Serves <paramref name="next"/> from the next batch on; the previous model is disposed by the worker.</summary>
    public void Swap(DeployedModel next)
    {
        Interlocked.Exchange(ref replacement, next)?.Dispose();
        requests.Writer.TryWrite(new Request([], [], 0, new TaskCompletionSource<IReadOnlyList<ImagePrediction>>()));   // wake the worker
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
            if (Interlocked.Exchange(ref replacement, null) is { } next)
            {
                var old = model;
                Volatile.Write(ref model, next);
                old.Dispose();
            }
            while (pendingWork.TryDequeue(out var action)) action();
            var batch = new List<Request>();
            var images = 0;
            while (images < MaxBatchImages && reader.TryRead(out var request))
            {
                if (request.Images.Length == 0) { request.Done.TrySetResult([]); continue; }
                batch.Add(request);
                images += request.Images.Length;
            }
            if (batch.Count == 0) continue;
            try
            {
                var all = UnlabelledImages.FromImages(batch.SelectMany(r => r.Images).ToList(), batch.SelectMany(r => r.Sources).ToList());
                var predictions = model.Predict(all, batch.Max(r => r.TopK));
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
        }
    }

    public void Dispose()
    {
        requests.Writer.TryComplete();
        worker.Join();
        model.Dispose();
        replacement?.Dispose();
    }
}
