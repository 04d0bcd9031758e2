using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

public enum CovarianceKind { Diagonal, Full }

/// <summary>
/// Per-class Gaussian statistics of features (mean and covariance), kept as module buffers so they are saved with a
/// learner's state. SMoPE's classifier alignment uses diagonal variances; HiDe-Prompt's task-identity alignment and
/// task-adaptive prediction use full covariances plus 1e-4 I (as the official code does).
/// </summary>
public sealed class GaussianClassStatistics : nn.Module
{
    private readonly Tensor means;       // [C, D]
    private readonly Tensor covariances; // [C, D, D] (full) or [C, D] (diagonal)
    private readonly Tensor known;       // [C] bool

    public CovarianceKind Kind { get; }
    public double Ridge { get; }

    public GaussianClassStatistics(int classes, int dim, CovarianceKind kind, double ridge = 1e-4) : base(nameof(GaussianClassStatistics))
    {
        Kind = kind;
        Ridge = ridge;
        means = zeros(classes, dim);
        covariances = kind == CovarianceKind.Full ? zeros(classes, dim, dim) : zeros(classes, dim);
        known = zeros(classes, dtype: ScalarType.Bool);
        register_buffer("means", means);
        register_buffer("covariances", covariances);
        register_buffer("known", known);
    }

    public Tensor Means => means;
    /// <summary>[C, D, D] (full) or [C, D] (diagonal variances), ridge included.</summary>
    public Tensor Covariances => covariances;
    public Tensor Known => known;
    public bool IsKnown(int label) => known[label].item<bool>();

    /// <summary>Sets class <paramref name="label"/>'s statistics from its features [n, D] (unbiased covariance, as
    /// torch.cov; the ridge keeps full covariances positive definite for sampling).</summary>
    public void Set(int label, Tensor features)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var f = features.to(float32);
        var mean = f.mean([0]);
        var centred = f - mean;
        var denominator = Math.Max(1, f.shape[0] - 1);
        means[label].copy_(mean);
        if (Kind == CovarianceKind.Full)
            covariances[label].copy_(centred.t().matmul(centred) / denominator + eye(f.shape[1], device: f.device) * Ridge);
        else
            covariances[label].copy_(centred.square().sum(dim: 0) / denominator + Ridge);
        known[label].fill_(true);
    }

    /// <summary>Draws <paramref name="count"/> features of class <paramref name="label"/> from its Gaussian.</summary>
    public Tensor Sample(int label, int count, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var mean = means[label];
        var noise = randn(count, mean.shape[0], generator: generator, device: mean.device);
        var sample = Kind == CovarianceKind.Full
            ? mean + noise.matmul(linalg.cholesky(covariances[label]).t())
            : mean + noise * covariances[label].sqrt();
        return sample.MoveToOuterDisposeScope();
    }

    /// <summary>Features and labels drawn from every class in <paramref name="classes"/>, shuffled.</summary>
    public (Tensor Features, Tensor Labels) SampleClasses(IEnumerable<int> classes, int perClass, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var list = classes.ToList();
        var features = cat(list.Select(c => Sample(c, perClass, generator)).ToArray(), 0);
        var labels = cat(list.Select(c => full(perClass, c, dtype: int64, device: means.device)).ToArray(), 0);
        var order = randperm(labels.shape[0], generator: generator, device: means.device);
        return (features[order].MoveToOuterDisposeScope(), labels[order].MoveToOuterDisposeScope());
    }
}
