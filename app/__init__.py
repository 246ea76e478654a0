"""The Streamlit app (`streamlit run app`): arrives with the bank/app issue."""
