namespace ContinualMoE.Data.Text;

/// <summary>One example of a text task in the instruction format that the LLM continual-learning literature shares
/// (O-LoRA's standard CL benchmark, TRACE, a user's JSON-lines file): an instruction, an input, and the expected output.
/// For a classification task the output is the label's text.</summary>
public sealed record TextExample(string Instruction, string Input, string Output);

/// <summary>A named text task as a loader reads it: its training and test examples and, for a classification task, the
/// texts of its labels (empty for an open-ended generation task, which is scored by exact match or the task's metric).</summary>
public sealed record TextTaskData(string Name, IReadOnlyList<TextExample> Train, IReadOnlyList<TextExample> Test, IReadOnlyList<string> Labels)
{
    public bool IsClassification => Labels.Count > 0;
}
