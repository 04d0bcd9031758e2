namespace ContinualMoE.Data.Text;

/// <summary>One tokenised example: the prompt's ids (instruction and input in the run's prompt format), the expected
/// output's ids (ending with the end-of-sequence id when the tokenizer has one), and the reference text. A generation
/// task's example has its task's <see cref="Metric"/> (scored on a generated answer of at most
/// <see cref="MaxAnswerTokens"/> tokens); a classification example has none (scored by label scoring).
/// <see cref="Source"/> is the example's input text (SARI scores the answer against it and the reference).</summary>
public sealed record TokenizedText(int[] Prompt, int[] Output, string Reference)
{
    public string Source { get; init; } = "";
    public TextAnswerMetric? Metric { get; init; }
    public int MaxAnswerTokens { get; init; }
}

/// <summary>A generated answer's score in [0, 1] against its reference (and the example's input, its source): 1 or 0 for
/// a right-or-wrong metric (exact match, the default), a fraction for a graded one (ROUGE-L, edit similarity, SARI).
/// The accuracy matrix averages the scores over a task's samples (<see cref="Training.Prediction.Scores"/>).</summary>
public delegate double TextAnswerMetric(string answer, string reference, string source);

/// <summary>A labelled dataset of tokenised text (<see cref="ILabelledDataset"/> for text): what a text scenario's tasks
/// hold and <see cref="TextDataLoader"/> batches.</summary>
public interface ITextDataset : ILabelledDataset
{
    TokenizedText GetText(int index);
}

/// <summary>One task's tokenised examples in the scenario's global label space.</summary>
public sealed class TextTaskDataset(string name, IReadOnlyList<string> classNames, IReadOnlyList<TokenizedText> examples, IReadOnlyList<int> labels)
    : ITextDataset
{
    public string Name => name;
    public int Count => examples.Count;
    public IReadOnlyList<string> ClassNames => classNames;

    public int GetLabel(int index)
    {
        this.CheckIndex(index);
        return labels[index];
    }

    public TokenizedText GetText(int index)
    {
        this.CheckIndex(index);
        return examples[index];
    }
}
