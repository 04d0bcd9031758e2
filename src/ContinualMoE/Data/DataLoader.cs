using System.Runtime.InteropServices;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using ContinualMoE.Data.Transforms;
using TorchSharp;

namespace ContinualMoE.Data;

/// <summary>
/// Turns a dataset into mini-batches of tensors, preparing them on a background thread (each batch's images are
/// decoded and transformed in parallel by <c>workers</c> threads) while the caller computes on the previous ones.
/// At most <see cref="Prefetch"/> finished batches wait in the queue, which bounds memory.
/// <para>
/// Determinism: the sample order of epoch e is a Fisher–Yates shuffle with <c>new Random(Seeds.Combine(seed, e))</c>
/// (or index order without shuffling), and sample i's augmentation uses the pipeline seeded with
/// (<c>Seeds.Combine(seed, e, 1)</c>, i). So batch order and content depend only on (seed, epoch), never on thread timing.
/// With <see cref="TorchWorkers"/> set (<c>input.rng: torch</c>), order and draws are instead those of a torch
/// DataLoader whose main generator was seeded with <c>Seeds.Combine(seed, e)</c> (<see cref="TorchEpochRandomness"/>);
/// a batch's samples then share a stream and are transformed one after another (still on the background thread).
/// </para>
/// <para>
/// Stopping early (breaking out of the foreach) cancels the background work, disposes the batches still queued and
/// joins the thread before <see cref="Epoch"/>'s enumerator finishes disposing.
/// </para>
/// </summary>
public sealed class DataLoader : IBatchLoader
{
    private readonly IImageDataset _dataset;
    private readonly ImagePipeline _pipeline;
    private readonly int _batchSize;
    private readonly bool _shuffle;
    private readonly int _seed;
    private readonly int _workers;
    private readonly torch.Device? _device;

    public DataLoader(IImageDataset dataset, ImagePipeline pipeline, int batchSize, bool shuffle, int seed,
        int workers = 0, torch.Device? device = null)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "batch size must be positive");
        if (workers < 0) throw new ArgumentOutOfRangeException(nameof(workers), "workers must be positive (0 = one per core)");
        _dataset = dataset;
        _pipeline = pipeline;
        _batchSize = batchSize;
        _shuffle = shuffle;
        _seed = seed;
        _workers = workers == 0 ? Environment.ProcessorCount : workers;
        _device = device;
    }

    /// <summary>Drop a final batch smaller than the batch size (useful for training with batch statistics).</summary>
    public bool DropLast { get; init; }

    /// <summary>Null: the project's draws. A number: torch's draws as a torch DataLoader with that many worker processes
    /// makes them (0 = single-process).</summary>
    public int? TorchWorkers { get; init; }

    /// <summary>How many finished batches may wait for the consumer.</summary>
    public int Prefetch { get; init; } = 3;

    public IImageDataset Dataset => _dataset;
    public int BatchSize => _batchSize;

    public int BatchesPerEpoch => DropLast ? _dataset.Count / _batchSize : (_dataset.Count + _batchSize - 1) / _batchSize;

    /// <summary>The dataset indices in the order epoch <paramref name="epoch"/> visits them.</summary>
    public int[] Order(int epoch)
    {
        if (TorchWorkers is { } workers)
        {
            using var draws = TorchDraws(epoch, workers);
            return draws.Order;
        }
        var order = Enumerable.Range(0, _dataset.Count).ToArray();
        if (_shuffle) Seeds.Shuffle(new Random(Seeds.Combine(_seed, epoch)), order);
        return order;
    }

    private TorchEpochRandomness TorchDraws(int epoch, int workers) =>
        new(unchecked((uint)Seeds.Combine(_seed, epoch)), _dataset.Count, _shuffle, workers);

    public IEnumerable<Batch> Epoch(int epoch)
    {
        var torchDraws = TorchWorkers is { } workers ? TorchDraws(epoch, workers) : null;
        var order = torchDraws?.Order ?? Order(epoch);
        var augmentSeed = Seeds.Combine(_seed, epoch, 1);
        var batchCount = BatchesPerEpoch;
        var cancel = new CancellationTokenSource();
        var queue = new BlockingCollection<Batch>(Math.Max(1, Prefetch));
        Exception? failure = null;

        var producer = new Thread(() =>
        {
            try
            {
                for (var b = 0; b < batchCount && !cancel.IsCancellationRequested; b++)
                {
                    var indices = order.AsSpan(b * _batchSize, Math.Min(_batchSize, order.Length - b * _batchSize)).ToArray();
                    var batch = Build(indices, augmentSeed, torchDraws?.ForBatch(b), cancel.Token);
                    try { queue.Add(batch, cancel.Token); }
                    catch (OperationCanceledException) { batch.Dispose(); break; }
                }
            }
            catch (OperationCanceledException) { }
            catch (Exception e) { failure = e; }
            finally { queue.CompleteAdding(); }
        }) { IsBackground = true, Name = $"DataLoader({_dataset.Name})" };
        producer.Start();

        try
        {
            foreach (var batch in queue.GetConsumingEnumerable()) yield return batch;
            producer.Join();
            if (failure != null) ExceptionDispatchInfo.Capture(failure).Throw();
        }
        finally
        {
            cancel.Cancel();
            producer.Join();
            while (queue.TryTake(out var left)) left.Dispose();
            queue.Dispose();
            cancel.Dispose();
            torchDraws?.Dispose();
        }
    }

    private Batch Build(int[] indices, int augmentSeed, AugmentationRandom? stream, CancellationToken token)
    {
        var buffers = new ImageBuffer[indices.Length];
        var labels = new long[indices.Length];
        void Prepare(int i)
        {
            var index = indices[i];
            buffers[i] = stream == null
                ? _pipeline.Apply(_dataset.GetImage(index), augmentSeed, index)
                : _pipeline.Apply(_dataset.GetImage(index), stream);
            labels[i] = _dataset.GetLabel(index);
        }

        if (_workers == 1 || stream != null) for (var i = 0; i < indices.Length; i++) { token.ThrowIfCancellationRequested(); Prepare(i); }
        else
        {
            try
            {
                Parallel.For(0, indices.Length, new ParallelOptions { MaxDegreeOfParallelism = _workers, CancellationToken = token }, Prepare);
            }
            catch (AggregateException e) when (e.InnerExceptions.Count >= 1)
            {
                ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            }
        }

        try { return ToBatch(indices, buffers, labels); }
        finally { foreach (var b in buffers) b?.Return(); }   // pooled sample arrays (ImageBuffer), now copied
    }

    private Batch ToBatch(int[] indices, ImageBuffer[] buffers, long[] labels)
    {
        var imageTensor = StackImages(buffers, $"dataset '{_dataset.Name}'", i => $"sample {indices[i]}");
        var labelTensor = torch.tensor(labels, [indices.Length]);
        if (_device != null && _device.type != DeviceType.CPU)
        {
            var (onDeviceImages, onDeviceLabels) = (imageTensor.to(_device), labelTensor.to(_device));
            imageTensor.Dispose();
            labelTensor.Dispose();
            (imageTensor, labelTensor) = (onDeviceImages, onDeviceLabels);
        }
        return new Batch(imageTensor, labelTensor, indices);
    }

    /// <summary>Copies same-sized prepared samples into one new [B,C,H,W] float32 CPU tensor (the caller owns it and may
    /// return the buffers afterwards). A sample of another size is an error naming <paramref name="origin"/> and the samples
    /// (<paramref name="sampleName"/> of a position).</summary>
    public static torch.Tensor StackImages(IReadOnlyList<ImageBuffer> buffers, string origin, Func<int, string> sampleName)
    {
        if (buffers.Count == 0) throw new ArgumentException("no samples to stack", nameof(buffers));
        var first = buffers[0];
        var sampleSize = first.Length;
        // Samples are copied straight into the tensor's memory: no batch-sized managed array, so the loader adds no
        // large-object-heap garbage (fewer garbage collections while libtorch runs on the main thread).
        var imageTensor = torch.empty([buffers.Count, first.Channels, first.Height, first.Width], torch.float32);
        var target = MemoryMarshal.Cast<byte, float>(imageTensor.bytes);
        for (var i = 0; i < buffers.Count; i++)
        {
            var b = buffers[i];
            if (b.Channels != first.Channels || b.Height != first.Height || b.Width != first.Width)
            {
                imageTensor.Dispose();
                throw new ContinualMoEException(
                    $"{origin}: {sampleName(i)} became {b.Channels}x{b.Height}x{b.Width} but {sampleName(0)} " +
                    $"became {first.Channels}x{first.Height}x{first.Width}; the pipeline must produce a fixed size (add a Resize)");
            }
            b.Span.CopyTo(target.Slice(i * sampleSize, sampleSize));
        }
        return imageTensor;
    }
}
