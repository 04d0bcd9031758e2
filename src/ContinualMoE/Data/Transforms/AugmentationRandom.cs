using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Data.Transforms;

/// <summary>
/// The draws random transforms make, named after the torchvision 0.14 calls they stand for. Two sources:
/// <see cref="ProjectRandom"/> (System.Random, seeded per sample; the project default, independent of thread
/// scheduling) and <see cref="TorchRandom"/> (libtorch's CPU generator through TorchSharp, making exactly the calls
/// torchvision makes, so a generator in the same state gives the same crops, flips and jitter; <c>input.rng: torch</c>).
/// </summary>
public abstract class AugmentationRandom
{
    /// <summary><c>torch.empty(1).uniform_(low, high).item()</c>.</summary>
    public abstract double Uniform(double low, double high);

    /// <summary>RandomResizedCrop's aspect ratio: <c>torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]))</c>
    /// with <c>log_ratio = torch.log(torch.tensor(ratio))</c>.</summary>
    public abstract double LogUniform(double min, double max);

    /// <summary><c>torch.randint(0, high, size=(1,)).item()</c>: uniform in 0..high-1.</summary>
    public abstract int Integer(int high);

    /// <summary><c>torch.rand(1) &lt; p</c> (RandomHorizontalFlip).</summary>
    public abstract bool Bernoulli(double probability);

    /// <summary>ColorJitter.get_params draws the order of its four adjustments (<c>torch.randperm(4)</c>) before the
    /// factors; with a single adjustment the order changes nothing but the draw still advances torch's generator.</summary>
    public abstract void ColorJitterOrder();

    /// <summary>Existing callers pass a System.Random: the project's draws from it.</summary>
    public static implicit operator AugmentationRandom(Random random) => new ProjectRandom(random);
}

/// <summary>The project's draws (System.Random): one NextDouble per uniform, Next(high) per integer.</summary>
public sealed class ProjectRandom(Random random) : AugmentationRandom
{
    public override double Uniform(double low, double high) => low + random.NextDouble() * (high - low);

    public override double LogUniform(double min, double max)
    {
        double logMin = Math.Log(min), logMax = Math.Log(max);
        return Math.Exp(logMin + random.NextDouble() * (logMax - logMin));
    }

    public override int Integer(int high) => random.Next(high);
    public override bool Bernoulli(double probability) => random.NextDouble() < probability;
    public override void ColorJitterOrder() { }
}

/// <summary>
/// torchvision's draws on a libtorch CPU generator (mt19937, the generator <c>torch.manual_seed</c> seeds). Every draw is
/// the same libtorch call on a float32 / int64 tensor, so the values match PyTorch bit for bit
/// (<c>AugmentationDrawsParityTests</c>). Not thread-safe: one sample stream per instance, as one DataLoader worker.
/// </summary>
public sealed class TorchRandom(Generator generator) : AugmentationRandom
{
    public Generator Generator => generator;

    public override double Uniform(double low, double high)
    {
        using var value = empty(1, ScalarType.Float32).uniform_(low, high, generator);
        return value.item<float>();
    }

    public override double LogUniform(double min, double max)
    {
        using var scope = NewDisposeScope();
        var logRatio = tensor(new[] { (float)min, (float)max }).log();
        var draw = empty(1, ScalarType.Float32).uniform_(logRatio[0].item<float>(), logRatio[1].item<float>(), generator);
        return draw.exp().item<float>();
    }

    public override int Integer(int high)
    {
        using var value = randint(0, high, [1], ScalarType.Int64, generator: generator);
        return (int)value.item<long>();
    }

    public override bool Bernoulli(double probability)
    {
        using var value = rand([1], ScalarType.Float32, generator: generator);
        return value.item<float>() < (float)probability;
    }

    public override void ColorJitterOrder()
    {
        using var order = randperm(4, generator: generator);
    }

    /// <summary><c>torch.empty((), dtype=torch.int64).random_(generator)</c>: uniform in 0..2^63-1, how the
    /// DataLoader draws its workers' base seed and RandomSampler its generator's seed. That call keeps the low 63 bits
    /// of one 64-bit draw; TorchSharp exposes only random_(from, to), and the range -2^62..2^62 (2^63 values, so the
    /// same single 64-bit draw modulo 2^63) shifted back by 2^62 gives the same number.</summary>
    public long Int64Seed()
    {
        const double half = 4611686018427387904.0; // 2^62, exact in a double
        using var value = empty([], ScalarType.Int64).random_(-half, half, generator);
        return value.item<long>() + (1L << 62);
    }
}
