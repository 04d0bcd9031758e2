namespace ContinualMoE.Data.Text;

/// <summary>Settings shared by the text task loaders. A spec's <c>key=value</c> parts override these
/// (see <see cref="TextTaskCatalog"/>).</summary>
public sealed record TextTaskOptions
{
    /// <summary>Keep at most this many training examples per label (classification tasks), drawn with <see cref="Seed"/>.
    /// Null keeps the loader's default: every example of a benchmark's published JSON files (O-LoRA's "full" sampling),
    /// 1000 per class for the original CSV files (Progressive Prompts' <c>--select_k_per_class 1000</c>).</summary>
    public int? TrainPerClass { get; init; }

    /// <summary>Keep at most this many test examples per label; null keeps them all.</summary>
    public int? TestPerClass { get; init; }

    /// <summary>Keep at most this many training / test examples per task (any task), after the per-class caps;
    /// null keeps them all. For quick runs on the large generation tasks.</summary>
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }

    /// <summary>Seed of every draw a loader makes (per-class sampling, the split of a single JSON-lines file).</summary>
    public int Seed { get; init; }

    /// <summary>Fraction of a task's examples held out for testing when its JSON-lines data is one file.</summary>
    public double TestFraction { get; init; } = 0.2;

    /// <summary>O-LoRA's <c>configs/instruction_config.json</c> (the instruction of each task family). Null looks for it
    /// next to the benchmark folder (an O-LoRA checkout) and otherwise uses the project's own instructions.</summary>
    public string? InstructionFile { get; init; }
}
