using ContinualMoE.Data.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Data;

/// <summary>
/// The random draws of one epoch of a torch 1.13 <c>DataLoader</c> (RandomSampler or sequential order, batches of
/// <c>batchSize</c>, <c>workers</c> worker processes, persistent_workers off) over torchvision 0.14 transforms, given
/// the seed of the main process's generator at the moment the epoch's iterator is created:
/// <list type="number">
/// <item>the iterator draws <c>base_seed</c> (an int64 <c>random_()</c>) from the main generator (torch
/// utils/data/dataloader.py, _BaseDataLoaderIter.__init__);</item>
/// <item>RandomSampler.__iter__ draws a second int64 from it, seeds a fresh generator with it and takes
/// <c>randperm(n)</c> (utils/data/sampler.py); a sequential loader draws nothing;</item>
/// <item>worker w runs <c>torch.manual_seed(base_seed + w)</c> (utils/data/_utils/worker.py) and gets batches
/// round-robin, batch b from worker b mod workers, transforming its samples in order; with no workers the samples draw
/// from the main generator itself, right after the sampler's seed.</item>
/// </list>
/// So given that main-generator state, the order and every crop, flip and jitter equal the official loader's
/// (<c>AugmentationDrawsParityTests</c>). What is not reproduced: the official main generator's state at each epoch
/// depends on every draw its program made before (initialisation, noise, earlier loaders), so runs seed it from
/// (run seed, epoch) instead; and a single-process official loader interleaves the model's own draws between batches.
/// </summary>
public sealed class TorchEpochRandomness : IDisposable
{
    private readonly Generator _main;
    private readonly TorchRandom[] _workers;
    private readonly TorchRandom _mainStream;

    public TorchEpochRandomness(ulong mainSeed, int sampleCount, bool shuffle, int workers)
    {
        if (workers < 0) throw new ArgumentOutOfRangeException(nameof(workers), "workers must be 0 or more");
        _main = new Generator(mainSeed);
        _mainStream = new TorchRandom(_main);
        var baseSeed = _mainStream.Int64Seed();
        if (shuffle)
        {
            using var samplerGenerator = new Generator(unchecked((ulong)_mainStream.Int64Seed()));
            using var permutation = randperm(sampleCount, generator: samplerGenerator);
            Order = permutation.data<long>().Select(i => (int)i).ToArray();
        }
        else Order = Enumerable.Range(0, sampleCount).ToArray();
        _workers = Enumerable.Range(0, workers).Select(w => new TorchRandom(new Generator(unchecked((ulong)(baseSeed + w))))).ToArray();
    }

    /// <summary>The dataset indices in the order the epoch visits them.</summary>
    public int[] Order { get; }

    /// <summary>The stream batch <paramref name="batch"/>'s samples draw from, one after another. Batches must be asked
    /// for in order, since a worker's stream continues from its previous batch.</summary>
    public AugmentationRandom ForBatch(int batch) => _workers.Length == 0 ? _mainStream : _workers[batch % _workers.Length];

    public void Dispose()
    {
        foreach (var worker in _workers) worker.Generator.Dispose();
        _main.Dispose();
    }
}
