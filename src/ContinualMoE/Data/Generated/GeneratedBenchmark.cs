namespace ContinualMoE.Data.Generated;

/// <summary>
/// A synthetic stand-in for "pretrain upstream, then learn new classes continually": two datasets whose classes come
/// from disjoint recipe ranges, so nothing learned upstream has seen a continual class.
/// Upstream classes use recipes 0..upstreamClasses-1; continual classes use recipes
/// <see cref="ContinualRecipeOffset"/>.. onwards, so the continual classes do not change when the upstream count does.
/// Train and test samples are rendered from different seeds (split tags 0 and 1) and never coincide.
/// </summary>
public sealed record GeneratedBenchmark(DatasetSplits Upstream, DatasetSplits Continual)
{
    public const int ContinualRecipeOffset = 1_000_000;
    public const int TrainSplitTag = 0;
    public const int TestSplitTag = 1;

    public static GeneratedBenchmark Create(int seed, int upstreamClasses, int continualClasses, int trainPerClass,
        int testPerClass, int size = 32)
    {
        if (upstreamClasses < 1 || continualClasses < 1)
            throw new ContinualMoEException($"generated benchmark needs at least one upstream and one continual class (got {upstreamClasses} and {continualClasses})");
        if (upstreamClasses >= ContinualRecipeOffset)
            throw new ContinualMoEException($"at most {ContinualRecipeOffset - 1} upstream classes");
        var upstream = Enumerable.Range(0, upstreamClasses).ToArray();
        var continual = Enumerable.Range(ContinualRecipeOffset, continualClasses).ToArray();
        return new GeneratedBenchmark(
            Splits("generated-upstream", seed, upstream, trainPerClass, testPerClass, size),
            Splits("generated", seed, continual, trainPerClass, testPerClass, size));
    }

    private static DatasetSplits Splits(string name, int seed, int[] recipes, int trainPerClass, int testPerClass, int size) =>
        new(new GeneratedImageDataset($"{name}-train", seed, recipes, trainPerClass, TrainSplitTag, size),
            new GeneratedImageDataset($"{name}-test", seed, recipes, testPerClass, TestSplitTag, size));
}
